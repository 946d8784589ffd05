"""``course train``: lesson 5's workflow as a script, in one process or on many with ``torchrun``.

    course train photos/ --output runs/photos                       # one process
    torchrun --nproc_per_node 2 -m course_tools.train photos/ --output runs/photos   # two processes (DDP)
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        -m course_tools.train /shared/photos --output /shared/runs/photos        # two machines of 8 GPUs

The same steps as ``solutions/05_your_own_images.ipynb``, with the same library functions: scan the folder
(unreadable files skipped and named), drop classes with fewer than ``--min-images`` images, a stratified
group-aware split, a backbone with a new head fine-tuned in two stages (the head on the frozen body, then the
body with a tenth of the learning rate, a warm-up and a cosine decay, as :func:`course_utils.training.fine_tune`),
an evaluation on the test split, and in ``--output``: ``model.pt`` (loads with
:func:`course_utils.checkpoints.build_model_from_checkpoint` in a one-process notebook), ``metrics.json`` and
``classification_report.csv``.

Under ``torchrun`` every rank trains a copy of the model on its shard of each batch (see
:mod:`course_utils.distributed`); the global batch size and the learning rate stay those of one process; only
rank 0 prints and writes, always atomically. ``--resume`` continues a killed run from the per-epoch checkpoints in
``--output``/resume/, which a finished run removes. Each error is one line; exit status 0 on success, 2 for a
bad argument, a folder that cannot be used or a rank that cannot read it, 1 when another rank died or could not
be reached, 143 when ``torchrun`` stopped the process (SIGTERM).
"""

from __future__ import annotations

import argparse
import copy
import math
import re
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["CHECKPOINT_NAME", "LESSON", "REPORT_NAME", "RESUME_FOLDER", "StoppedBySignal", "add_arguments", "main",
           "run", "train_folder"]

#: Where the defaults come from: lesson 5's settings for the chosen profile.
LESSON = "05_your_own_images"
CHECKPOINT_NAME = "model.pt"
REPORT_NAME = "classification_report.csv"
#: Per-epoch checkpoints for ``--resume``, one per stage, inside ``--output``; removed when the run finishes.
RESUME_FOLDER = "resume"
_STAGE_FILES = ("stage1.pt", "stage2.pt")


class StoppedBySignal(BaseException):
    """``torchrun`` (or a user) sent SIGTERM: unwind so that no temporary file is left behind."""


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``course train`` (also those of ``python -m course_tools.train``)."""
    parser.add_argument("folder", type=Path, metavar="FOLDER",
                        help="a folder with one sub-folder per class, or the name of one of the course's data sets "
                             "(e.g. pets-binary), read from the data folder, never downloaded")
    parser.add_argument("--output", type=Path, required=True, metavar="DIR",
                        help="where model.pt, metrics.json and classification_report.csv go")
    parser.add_argument("--profile", help="full, offline or smoke: where the defaults come from (default: "
                                          "$COURSE_PROFILE, else full with a GPU, offline without)")
    parser.add_argument("--arch", help="backbone (default: the profile's for lesson 5)")
    parser.add_argument("--image-size", type=int, metavar="PIXELS", help="side of the square images")
    parser.add_argument("--epochs", type=int, help="epochs of stage 2 (the body fine-tuned with the head)")
    parser.add_argument("--head-epochs", type=int, default=5,
                        help="at most this many epochs of stage 1 (the head alone); 0 skips it (default: 5)")
    parser.add_argument("--batchnorm", choices=("frozen", "train"), default="frozen",
                        help="BatchNorm in inference mode or training mode in stage 2 (default: frozen)")
    parser.add_argument("--lr", type=float, default=1e-3, help="the head's learning rate; the body learns at a "
                                                               "tenth of it (default: 0.001)")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="the global batch: images per step over all processes together")
    parser.add_argument("--seed", type=int, default=0, help="random seed (split, head, order; default: 0)")
    parser.add_argument("--min-images", type=int, default=10, metavar="N",
                        help="classes with fewer images are dropped (default: 10)")
    parser.add_argument("--device", help="cpu or cuda (default: the best available; under torchrun one GPU per "
                                         "process, or the CPU with gloo)")
    parser.add_argument("--resume", action="store_true", help="continue a killed run from --output/resume/")
    return parser


def _stop_on_sigterm() -> Any:
    """Turn SIGTERM into an exception, so that ``finally`` blocks (atomic writes) clean up before the exit;
    return the handler there was before."""
    def handler(signum: int, frame: Any) -> None:
        raise StoppedBySignal()
    return signal.signal(signal.SIGTERM, handler)


def _device(requested: str | None) -> Any:
    """Join the process group when started by torchrun; return this process's device."""
    from course_utils import distributed, environment

    if distributed.launched_by_torchrun():
        return distributed.start("gloo" if requested == "cpu" else None)
    return environment.select_device(requested)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Lesson 5's defaults for the profile, overridden by the options, checked (one line per bad value)."""
    from course_utils import config, distributed, environment

    profile, _ = environment.profile_and_reason(args.profile)
    settings = config.resolve(profile, lesson=LESSON, dataset=str(args.folder), arch=args.arch,
                              image_size=args.image_size, epochs=args.epochs, batch_size=args.batch_size,
                              seed=args.seed)
    if args.head_epochs < 0 or args.min_images < 1 or not (args.lr > 0 and math.isfinite(args.lr)):
        raise ValueError(f"--head-epochs must be >= 0, --min-images >= 1 and --lr > 0; got {args.head_epochs}, "
                         f"{args.min_images} and {args.lr}.")
    distributed.per_rank_batch_size(settings["batch_size"], distributed.world_size())
    return {**settings, "profile": profile}


def _read_split(folder: Path, min_images: int, seed: int, verbose: bool,
                profile: str) -> tuple[Any, list[str], list[str]]:
    """Scan, drop rare classes and split, on every rank; every rank must be able to and must get the same split.

    ``folder`` may also name one of the course's data sets (``pets-binary``, ``gtsrb``, ...; see
    :data:`course_utils.dataset_registry.DATASET_REGISTRY`) when no folder of that name exists: it is read, never
    downloaded (several processes would download it at once; ``course prefetch`` does it first), and split as
    ``load_dataset`` splits it for ``profile`` (its own test set kept).
    """
    from course_utils import datasets, distributed, splits
    from course_utils.dataset_registry import DATASET_REGISTRY

    problem, result = None, None
    try:
        if str(folder) in DATASET_REGISTRY and not folder.exists():
            split = datasets.load_dataset(str(folder), profile=profile, seed=seed, download=False, verbose=verbose)
            result = (split, list(split.classes), [])
        else:
            samples, classes = datasets.scan_image_folder(folder, verbose=verbose)
            kept, kept_classes = splits.drop_rare_classes(samples, classes, min_images, verbose=verbose)
            split = splits.split_samples(kept, kept_classes, val_fraction=0.15, test_fraction=0.25, seed=seed,
                                         group_aware=True)
            result = (split, kept_classes, [name for name in classes if name not in kept_classes])
    except (OSError, ValueError) as error:
        problem = str(error).splitlines()[0] if str(error) else type(error).__name__
    distributed.check_on_every_rank(problem)
    split, classes, dropped = result
    parts = [(part, str(sample.path), sample.label) for part in ("train", "val", "test")
             for sample in getattr(split, part)]
    distributed.check_same_on_every_rank(distributed.fingerprint(parts), f"The split of {folder}")
    return split, classes, dropped


def _wrap(model: Any, device: Any) -> Any:
    """``DistributedDataParallel`` around ``model`` when distributed (built after the trainable parameters are
    chosen: DDP averages the gradients of the parameters that require them when it is built); else the model."""
    from torch.nn.parallel import DistributedDataParallel

    from course_utils import distributed

    if not distributed.is_distributed():
        return model
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def _use_batchnorm_mode(model: Any, batchnorm: str, device: Any, verbose: bool) -> Any:
    """With BatchNorm training under DDP: SyncBatchNorm on GPUs; on CPUs (where PyTorch refuses it) say so."""
    from torch import nn

    from course_utils import distributed

    if batchnorm != "train" or distributed.world_size() == 1:
        return model
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if verbose:
        print("ℹ️ BatchNorm trains (--batchnorm train) on the CPU: each process normalises over its own shard of "
              "the batch (PyTorch's SyncBatchNorm works only on GPUs), so results differ a little from one process.")
    return model


def _fine_tune(model: Any, train_loader: Any, val_loader: Any, *, settings: dict[str, Any], args: argparse.Namespace,
               device: Any, metadata: dict[str, Any], resume_dir: Path, chance: float,
               verbose: bool) -> tuple[Any, Any, int, float]:
    """Two stages as in :func:`course_utils.training.fine_tune`, each with ``fit`` (and DDP when distributed);
    ``chance`` is what always answering the most common class scores on validation.

    Returns ``(model, history, kept_stage, val_accuracy)`` (the validation accuracy of the weights kept).
    fine_tune itself changes which parameters train between the stages inside one call; DDP fixes the parameters
    it averages when it is built, so here each stage gets its own wrapper.
    """
    import gc

    import pandas as pd
    import torch

    from course_utils import models, training

    histories = []
    stage_one_state = None
    if args.head_epochs:
        models.freeze_backbone(model)
        head = [parameter for parameter in model.parameters() if parameter.requires_grad]
        head_history = training.fit(
            _wrap(model, device), train_loader, val_loader, epochs=args.head_epochs,
            optimizer=torch.optim.AdamW(head, lr=args.lr, weight_decay=0.01), device=device,
            early_stopping_patience=training.HEAD_PATIENCE, checkpoint_path=resume_dir / _STAGE_FILES[0],
            resume=args.resume, checkpoint_metadata=metadata, verbose=verbose)
        histories.append(head_history.assign(stage=1))
        stage_one_state = copy.deepcopy(model.state_dict())
        gc.collect()  # the stage-1 DDP wrapper goes now, with its gradient hooks
    models.unfreeze(model)
    model = _use_batchnorm_mode(model, args.batchnorm, device, verbose)
    optimizer, scheduler = training.body_stage_optimizer(model, head_lr=args.lr, body_lr_factor=0.1,
                                                         total_steps=settings["epochs"] * len(train_loader))
    body_history = training.fit(
        _wrap(model, device), train_loader, val_loader, epochs=settings["epochs"], optimizer=optimizer,
        scheduler=scheduler, scheduler_step="batch", device=device, batchnorm=args.batchnorm,
        first_epoch=len(histories[0]) + 1 if histories else 1, checkpoint_path=resume_dir / _STAGE_FILES[1],
        resume=args.resume, checkpoint_metadata=metadata, verbose=verbose)
    histories.append(body_history.assign(stage=2))
    history = pd.concat(histories, ignore_index=True)
    problem, failed = training.stage_two_problem(body_history, chance,
                                                 histories[0] if stage_one_state is not None else None)
    kept_stage, kept_history = 2, body_history
    if problem is not None and stage_one_state is not None:
        model.load_state_dict(stage_one_state)
        models.freeze_backbone(model)
        kept_stage, kept_history = 1, histories[0]
        if verbose:
            print(f"{'⚠️' if failed else 'ℹ️'} Stage 2 (fine-tuning the body) was not kept: {problem}; the model "
                  f"keeps the stage-1 weights (the head on the frozen body).")
    elif problem is not None and verbose:
        print(f"⚠️ Stage 2 (fine-tuning the body) failed: {problem}. There is no stage 1 to go back to "
              f"(--head-epochs 0): try a smaller --lr or the other --batchnorm mode.")
    return model, history, kept_stage, float(training.best_row(kept_history)["val_accuracy"])


def _test_predictions(model: Any, test_samples: Sequence[Any], transform: Any, batch_size: int,
                      device: Any) -> tuple[list[int], list[int]] | None:
    """Each rank predicts its shard of the test split; rank 0 gets ``(targets, predicted)`` in split order."""
    from torch.utils.data import DataLoader

    from course_utils import distributed, evaluation, loaders

    sampler = distributed.ShardSampler(len(test_samples))
    loader = DataLoader(loaders.ImageDataset(test_samples, transform), batch_size=batch_size, sampler=sampler)
    predicted = evaluation.predict(model, loader, device).predicted.tolist() if len(sampler) else []
    shards = distributed.gather_to_main((list(sampler), predicted))
    if shards is None:
        return None
    by_index = {index: label for indices, labels in shards for index, label in zip(indices, labels, strict=True)}
    return [sample.label for sample in test_samples], [by_index[index] for index in range(len(test_samples))]


def _write_results(output: Path, model: Any, info: Any, settings: dict[str, Any], classes: list[str],
                   dropped: list[str], split: Any, training_run: tuple[Any, int, float], targets: list[int],
                   predicted: list[int], seconds: float, args: argparse.Namespace) -> dict[str, Any]:
    """Rank 0 only: model.pt, metrics.json and the classification report, each written atomically."""
    from course_utils import checkpoints, distributed, evaluation, files, results

    table = evaluation.classification_table(targets, predicted, classes)
    test_accuracy = table.attrs["accuracy"]
    checkpoints.save_checkpoint(output / CHECKPOINT_NAME, model, arch=info.name, classes=classes, mean=info.mean,
                                std=info.std, input_size=settings["image_size"],
                                metrics={"test_accuracy": test_accuracy})
    with files.atomic_write(output / REPORT_NAME) as temporary:
        table.to_csv(temporary, index_label="class")
    history, kept_stage, val_accuracy = training_run
    metrics = {"lesson": "train", "profile": settings["profile"], "dataset": str(args.folder), "arch": info.name,
               "epochs": settings["epochs"], "head_epochs": args.head_epochs, "seconds": round(seconds, 1),
               "seed": args.seed, "image_size": settings["image_size"], "batch_size": settings["batch_size"],
               "learning_rate": args.lr, "batchnorm": args.batchnorm, "processes": distributed.world_size(),
               "classes": classes, "dropped_classes": dropped, "images": len(split.train + split.val + split.test),
               "kept_stage": kept_stage, "val_accuracy": val_accuracy, "test_accuracy": test_accuracy,
               "history": history.round(6).to_dict(orient="records")}
    results.write_metrics(output, **metrics)
    return metrics


def _remove_resume_files(resume_dir: Path) -> None:
    """Delete the per-epoch checkpoints this command wrote (and their folder once empty), nothing else."""
    for name in _STAGE_FILES:
        (resume_dir / name).unlink(missing_ok=True)
    try:
        resume_dir.rmdir()
    except OSError:  # missing, or it holds something that is not ours: leave it
        pass


def train_folder(args: argparse.Namespace) -> dict[str, Any] | None:
    """Run the whole workflow; return the metrics on rank 0 (None on the other ranks)."""
    import torch

    from course_utils import backbones, distributed, environment, files, loaders, models, training, transforms

    started = time.perf_counter()
    device = _device(args.device)
    main_process = distributed.is_main_process()
    problem, settings = None, {}
    try:  # every rank checks the options and the folder; one that cannot read it stops them all, in one line
        settings = _settings(args)
        if main_process:
            files.check_folder_path(args.output)
            files.check_writable_file(args.output / CHECKPOINT_NAME)
    except (OSError, ValueError) as error:
        problem = _first_line(error)
    distributed.check_on_every_rank(problem)
    environment.seed_everything(args.seed)
    split, classes, dropped = _read_split(args.folder, args.min_images, args.seed, verbose=main_process,
                                          profile=settings["profile"])
    world = distributed.world_size()
    if main_process:
        print(f"{len(split.train)} training, {len(split.val)} validation and {len(split.test)} test images in "
              f"{len(classes)} classes; {world} process(es) on {device.type}, {settings['batch_size'] // world} "
              f"images per process and step (global batch {settings['batch_size']})")

    model, info = backbones.load_backbone(settings["arch"], verbose=False)
    models.replace_head(model, len(classes))
    environment.seed_everything(args.seed)  # the new head's weights: the same on every rank
    train_tf = transforms.train_transform(info, settings["image_size"])
    eval_tf = transforms.eval_transform(info, settings["image_size"])
    workers = max(0, loaders.default_num_workers() // world)
    on_gpu = device.type == "cuda"
    train_loader = distributed.distributed_loader(loaders.ImageDataset(split.train, train_tf), train=True,
                                                  global_batch_size=settings["batch_size"], seed=args.seed,
                                                  num_workers=workers, pin_memory=on_gpu)
    val_loader = distributed.distributed_loader(loaders.ImageDataset(split.val, eval_tf), train=False,
                                                global_batch_size=settings["batch_size"], num_workers=workers,
                                                pin_memory=on_gpu)
    from course_utils.devices import prepare_model

    prepare_model(model, device)  # memory format fixed before DDP is built around the model
    metadata = {"arch": info.name, "classes": classes, "mean": info.mean, "std": info.std,
                "input_size": settings["image_size"]}
    resume_dir = args.output / RESUME_FOLDER
    chance = training.chance_level(torch.tensor([sample.label for sample in split.val]))
    model, history, kept_stage, val_accuracy = _fine_tune(model, train_loader, val_loader, settings=settings, args=args,
                                            device=device, metadata=metadata, resume_dir=resume_dir,
                                            chance=chance, verbose=main_process)
    with torch.no_grad():
        outcome = _test_predictions(model, split.test, eval_tf, settings["batch_size"], device)
    metrics = None
    if main_process:
        targets, predicted = outcome
        metrics = _write_results(args.output, model, info, settings, classes, dropped, split,
                                 (history, kept_stage, val_accuracy), targets, predicted,
                                 time.perf_counter() - started, args)
        _remove_resume_files(resume_dir)
        print(f"Test accuracy {metrics['test_accuracy']:.1%} (stage {kept_stage} kept); wrote "
              f"{files.display_path(args.output / CHECKPOINT_NAME)}, metrics.json and {REPORT_NAME} in "
              f"{metrics['seconds']:.0f} s")
    distributed.check_on_every_rank(None)  # every rank waits until rank 0 has written
    return metrics


def run(args: argparse.Namespace, *, program: str = "course train") -> int:
    """Train with parsed options and turn every error into one line on standard error; return the exit status."""
    from tqdm.auto import tqdm

    from course_utils import distributed

    previous_handler = _stop_on_sigterm()
    try:
        train_folder(args)
        return 0
    except (StoppedBySignal, KeyboardInterrupt, ValueError, OSError, RuntimeError) as error:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # on the way out: a second SIGTERM must not cut the line
        status, line = _outcome(error)
        tqdm.write(f"{program}: {_who()}{line}", file=sys.stderr)  # on a line of its own, below a progress bar
        return status
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        distributed.stop()
        signal.signal(signal.SIGTERM, previous_handler)


def _outcome(error: BaseException) -> tuple[int, str]:
    """The exit status and the one line for an error that ended the run."""
    from course_utils import distributed

    if isinstance(error, StoppedBySignal):
        return 143, ("stopped by SIGTERM (torchrun ends the job when another process fails); nothing half-written "
                     "was left. Run again with --resume to continue.")
    if isinstance(error, KeyboardInterrupt):
        return 130, "interrupted; run again with --resume to continue."
    if isinstance(error, (distributed.DistributedError, ValueError, OSError)):
        return 2, f"error: {_first_line(error)}"
    # a collective operation that failed: another rank died, or did not answer within the timeout
    reason = re.sub(r"^\[[^\]]*\]\s*", "", _first_line(error)).split(". ")[0]
    return 1, (f"error: another process of the job stopped or could not be reached ({reason}); run again with "
               "--resume to continue.")


def main(argv: Sequence[str] | None = None, *, program: str = "course_tools.train") -> int:
    """``python -m course_tools.train`` (what torchrun starts): parse the options, train; return the exit status."""
    parser = argparse.ArgumentParser(prog=program, description=__doc__.splitlines()[0])
    return run(add_arguments(parser).parse_args(argv), program=program)


def _who() -> str:
    from course_utils import distributed

    return f"rank {distributed.rank()}: " if distributed.world_size() > 1 else ""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
