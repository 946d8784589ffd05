"""The training loop: :func:`fit` trains a model for some epochs and returns its history as a table.

What :func:`fit` does for you, so that lessons can focus on the ideas:

- trains with your optimizer and loss, evaluates on the validation split after every epoch, steps your
  scheduler once per epoch (``ReduceLROnPlateau`` gets the validation loss);
- averages loss and accuracy over *examples*, not batches, so a short last batch does not bias them;
- keeps a copy of the best weights (highest validation accuracy, ties broken by lower validation loss)
  and puts them back into the model at the end; optional early stopping;
- shows one progress bar per training run, one step per epoch, with the last epoch's metrics beside it
  (a widget in JupyterLab and Colab; in papermill logs and terminals a few text lines per run);
- channels-last memory format for the model and the image batches on the CPU and on CUDA, where it makes
  convolutions faster (see :mod:`course_utils.devices`; ``channels_last=False`` or
  ``COURSE_CHANNELS_LAST=0`` turns it off); mixed precision (``torch.autocast`` + ``GradScaler``) on CUDA only;
- on the CPU, PyTorch's fused implementation of your Adam, AdamW, SGD or Adagrad optimizer, unless you chose
  an implementation yourself (see :func:`use_fused_optimizer`);
- optionally saves a checkpoint after every epoch and resumes from it;
- BatchNorm layers in training mode or kept in inference mode while the body trains (``batchnorm=``);
- the same on several processes under ``torchrun`` (a ``DistributedDataParallel`` model, see
  :mod:`course_utils.distributed`): metrics summed over the ranks, the sampler's epoch set, only rank 0 prints
  and saves, checkpoints without the wrapper's ``module.`` prefix.

Beyond ``fit``: :func:`fine_tune` (the two-stage recipe: head first, then the body with discriminative learning
rates and a warm-up) and :func:`find_learning_rate` (a learning-rate range test that leaves the model as it was);
:func:`read_history` says whether a finished run was still improving, overfitting or had levelled off.

Reproducible resume: the checkpoint stores the random number generator states of ``random``, numpy,
torch (and CUDA) and of the training loader's ``generator``. A resumed run then ends with the same
history (except the ``seconds`` column) as an uninterrupted one, provided that you build the model,
optimizer, scheduler and loaders the same way in both runs (same seed; pass a seeded
``torch.Generator`` to a shuffling ``DataLoader`` or rely on the global torch seed) and that worker
processes are not persistent (``persistent_workers=False``, or ``num_workers=0``). On a GPU some
kernels are not bit-exact, so expect agreement up to float noise there.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import messages
from course_utils.devices import batch_to_device, evaluating, model_device, prepare_model, run_autocast
from course_utils.distributed import all_reduce_sum, is_distributed, is_main_process, unwrap
from course_utils.files import display_path
from course_utils.loaders import rewind_loader
from course_utils.models import find_head, freeze_backbone, parameter_groups, set_frozen_batchnorm_eval, unfreeze
from course_utils.progress import close_progress_bar, is_widget_bar, open_progress_bar

__all__ = ["BAR_REFRESH_SECONDS", "BATCHNORM_MODES", "HEAD_PATIENCE", "HISTORY_COLUMNS", "HISTORY_VERDICTS",
           "PROGRESS_EVERY_STEPS", "TEXT_BAR_REFRESH_SECONDS", "HistoryReading", "LearningRateFinderResult",
           "best_row", "body_stage_optimizer", "chance_level", "epochs_for_steps", "evaluate_loss_accuracy",
           "find_learning_rate", "fine_tune", "fit", "kept_epoch_is_better", "read_history", "stage_two_failure",
           "stage_two_problem", "train_one_epoch", "train_step", "use_fused_optimizer"]

HISTORY_COLUMNS = [
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "seconds",
]

#: The progress bar shows running loss/accuracy every this many steps (each update waits for the GPU).
PROGRESS_EVERY_STEPS = 20
#: Seconds between two redraws of the progress bar; text bars (logs, stored outputs) redraw more rarely.
BAR_REFRESH_SECONDS = 1.0
TEXT_BAR_REFRESH_SECONDS = 30.0

#: What ``batchnorm=`` accepts: BatchNorm layers in training mode (PyTorch's default) or kept in inference mode.
BATCHNORM_MODES = ("train", "frozen")

#: Keys of ``checkpoint_metadata`` that go to :func:`course_utils.checkpoints.save_checkpoint` directly.
_CHECKPOINT_FIELDS = ("arch", "classes", "mean", "std", "input_size", "model_config")


def _settings(model: nn.Module, device: torch.device | str | None, loss_fn: nn.Module | None,
              mixed_precision: bool | None) -> tuple[torch.device, nn.Module, bool]:
    """The device (default: where the model is), the loss (default: cross-entropy) and whether to use mixed
    precision (default: on CUDA only), as every function of this module decides them."""
    device = torch.device(device) if device is not None else model_device(model)
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    return device, loss_fn, device.type == "cuda" and mixed_precision is not False


def _accumulator_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


#: Optimizer classes that take ``fused=True`` on the CPU (PyTorch 2.4 and later).
_FUSED_ON_CPU = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD, torch.optim.Adagrad)


def use_fused_optimizer(optimizer: torch.optim.Optimizer) -> bool:
    """Let a CPU optimizer update its parameters with PyTorch's fused implementation; return whether it now does.

    Adam, AdamW, SGD and Adagrad leave the implementation to PyTorch by default (``fused=None`` and
    ``foreach=None``), and on the CPU PyTorch then loops over the parameters, running about ten small
    operations on each. ``fused=True`` updates each parameter in one pass over its memory: the same
    arithmetic, equal up to float rounding, in about half the time (figures in ``benchmarks/README.md``).
    :func:`fit` and :func:`train_one_epoch` call this.

    The optimizer is left as it is when you chose ``fused`` or ``foreach`` yourself, for other optimizer
    classes, with ``differentiable=True``, when a parameter is not a float tensor on the CPU (on CUDA PyTorch
    already picks a fast implementation itself) or when PyTorch is older than 2.4.
    """
    if not isinstance(optimizer, _FUSED_ON_CPU) or torch.torch_version.TorchVersion(torch.__version__) < "2.4":
        return False
    groups = optimizer.param_groups
    if all(group.get("fused") for group in groups):
        return True
    chosen = any(group.get("fused") is not None or group.get("foreach") is not None
                 or group.get("differentiable") for group in groups)
    on_cpu = all(parameter.device.type == "cpu" and torch.is_floating_point(parameter)
                 for group in groups for parameter in group["params"])
    if chosen or not on_cpu:
        return False
    for group in groups:
        group["fused"] = True
    optimizer.defaults["fused"] = True  # groups added later get it too
    return True


def train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: torch.optim.Optimizer,
               loss_fn: nn.Module) -> float:
    """One optimisation step on one batch (lesson 1's exercise): clear, forward, loss, backward, update.

    Returns the batch's loss as a plain number (``loss.item()``), so that no computation graph is kept.
    """
    optimizer.zero_grad()
    loss = loss_fn(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


class _RunProgress:
    """The batches of one epoch shown on the run's epoch bar: ``batch i/n`` and running metrics beside it."""

    def __init__(self, bar: Any, total: int | None) -> None:
        self.bar, self.total, self.step = bar, total, 0
        self.last_shown = time.monotonic()

    def update(self, steps: int = 1) -> None:
        self.step += steps

    def set_postfix(self, running: Mapping[str, str], refresh: bool = False) -> None:
        now = time.monotonic()
        if self.bar.disable or now - self.last_shown < self.bar.mininterval:
            return
        self.last_shown = now
        where = f"{self.step}/{self.total}" if self.total else str(self.step)
        self.bar.set_postfix({"batch": where, **running}, refresh=True)


def _check_batchnorm(batchnorm: str) -> None:
    if batchnorm not in BATCHNORM_MODES:
        raise ValueError(f"batchnorm={batchnorm!r} is not a BatchNorm mode: choose 'train' (statistics follow "
                         "the training batches) or 'frozen' (every BatchNorm layer stays in inference mode).")


def _set_training_mode(model: nn.Module, batchnorm: str) -> None:
    """``model.train()``, then BatchNorm layers back in eval mode: the frozen ones always, all with ``"frozen"``."""
    model.train()
    set_frozen_batchnorm_eval(model)
    if batchnorm == "frozen":
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def _summed_over_ranks(loss_sum: torch.Tensor, correct: torch.Tensor,
                       count: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The epoch's totals summed over every rank of a distributed run (see :mod:`course_utils.distributed`);
    unchanged in one process. Each rank saw its own shard, so the sums cover the whole split."""
    if not is_distributed():
        return loss_sum, correct, count
    totals = torch.stack([loss_sum, correct.to(loss_sum.dtype), torch.tensor(count).to(loss_sum)])
    all_reduce_sum(totals)
    return totals[0], totals[1].round().long(), int(totals[2].round().item())


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module | None = None,
    device: torch.device | str | None = None,
    *,
    scaler: torch.amp.GradScaler | None = None,
    mixed_precision: bool | None = None,
    progress_bar: Any | None = None,
    channels_last: bool | None = None,
    batchnorm: str = "train",
    batch_scheduler: Any | None = None,
) -> tuple[float, float]:
    """Train ``model`` for one pass over ``loader``; return the example-averaged ``(loss, accuracy)``.

    ``loss_fn`` must return the mean over the batch (the default ``CrossEntropyLoss`` does). Frozen
    BatchNorm layers stay in eval mode; ``batchnorm="frozen"`` keeps every BatchNorm layer in eval mode (see
    :func:`fit`). ``batch_scheduler`` (for example ``OneCycleLR``) steps after every batch. Loss and accuracy
    are summed on the device and read once at the end (plus every few steps for ``progress_bar``), so the GPU
    never waits for the Python loop.
    """
    _check_batchnorm(batchnorm)
    device, loss_fn, use_amp = _settings(model, device, loss_fn, mixed_precision)
    if scaler is None:
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    prepare_model(model, device, channels_last)
    use_fused_optimizer(optimizer)
    _set_training_mode(model, batchnorm)
    loss_sum = torch.zeros((), dtype=_accumulator_dtype(device), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    count = 0
    for step, (inputs, targets) in enumerate(loader, start=1):
        inputs = batch_to_device(inputs, device, channels_last)
        targets = targets.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with run_autocast(device, use_amp):
            logits = model(inputs)
            loss = loss_fn(logits, targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if batch_scheduler is not None:
            batch_scheduler.step()
        batch_size = targets.shape[0]
        loss_sum += loss.detach().to(loss_sum.dtype) * batch_size
        correct += (logits.detach().argmax(dim=1) == targets).sum()
        count += batch_size
        if progress_bar is not None:
            progress_bar.update(1)
            if step % PROGRESS_EVERY_STEPS == 0:
                running = {"loss": f"{loss_sum.item() / count:.4f}", "acc": f"{correct.item() / count:.3f}"}
                progress_bar.set_postfix(running, refresh=False)
    loss_sum, correct, count = _summed_over_ranks(loss_sum, correct, count)
    if count == 0:
        raise ValueError("The training loader yielded no batches; check the data set and batch size.")
    return loss_sum.item() / count, correct.item() / count


def evaluate_loss_accuracy(
    model: nn.Module,
    loader: Iterable,
    loss_fn: nn.Module | None = None,
    device: torch.device | str | None = None,
    *,
    mixed_precision: bool | None = None,
    channels_last: bool | None = None,
) -> tuple[float, float]:
    """Example-averaged ``(loss, accuracy)`` of ``model`` on ``loader``, in eval mode without gradients."""
    device, loss_fn, use_amp = _settings(model, device, loss_fn, mixed_precision)
    prepare_model(model, device, channels_last)
    loss_sum = torch.zeros((), dtype=_accumulator_dtype(device), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    count = 0
    with evaluating(model):
        for inputs, targets in loader:
            inputs = batch_to_device(inputs, device, channels_last)
            targets = targets.to(device, non_blocking=True)
            with run_autocast(device, use_amp):
                logits = model(inputs)
                loss = loss_fn(logits.float(), targets)
            loss_sum += loss.to(loss_sum.dtype) * targets.shape[0]
            correct += (logits.argmax(dim=1) == targets).sum()
            count += targets.shape[0]
    loss_sum, correct, count = _summed_over_ranks(loss_sum, correct, count)
    if count == 0:
        raise ValueError("The evaluation loader yielded no batches; is the split empty?")
    return loss_sum.item() / count, correct.item() / count


def _cpu_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's state dict on the CPU (safe from later training steps)."""
    return {key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()}


def _loader_generators(loader: Any) -> list[torch.Generator]:
    """The random generators a loader shuffles with (its own and its sampler's), without duplicates."""
    found: list[torch.Generator] = []
    for owner in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
            found.append(generator)
    return found


def _rng_state(loader: Any) -> dict[str, Any]:
    """Every random state that decides what the next epoch does (as plain types and tensors)."""
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    return {
        "python": [python_state[0], list(python_state[1]), python_state[2]],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "loader": [generator.get_state() for generator in _loader_generators(loader)],
    }


def _set_rng_state(state: Mapping[str, Any], loader: Any) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for generator, generator_state in zip(_loader_generators(loader), state["loader"], strict=False):
        generator.set_state(generator_state)


def _is_better(row: Mapping[str, float], best: Mapping[str, float] | None) -> bool:
    """Higher validation accuracy wins; on a tie, lower validation loss."""
    if best is None:
        return True
    if row["val_accuracy"] != best["val_accuracy"]:
        return row["val_accuracy"] > best["val_accuracy"]
    return row["val_loss"] < best["val_loss"]


def _history_frame(history: list[dict[str, float]], best_epoch: int | None) -> pd.DataFrame:
    frame = pd.DataFrame(history, columns=HISTORY_COLUMNS).astype({"epoch": int})
    frame.attrs["best_epoch"] = best_epoch
    return frame


#: What :func:`read_history` can say about a training run, in the order of its docstring.
HISTORY_VERDICTS = ("still improving", "overfitting", "levelled off")


@dataclass(frozen=True)
class HistoryReading:
    """What a training history says about the number of epochs: see :func:`read_history`.

    ``verdict`` is one of :data:`HISTORY_VERDICTS`; ``sentence`` says it in words, with the numbers behind it.
    """

    verdict: str
    best_epoch: int
    last_epoch: int
    best_val_accuracy: float
    train_loss_since_best: float
    val_loss_since_best: float
    sentence: str

    def __str__(self) -> str:
        return self.sentence


def read_history(history: pd.DataFrame, *, window: int = 2) -> HistoryReading:
    """Read a :func:`fit` history: was validation still improving when training stopped, or overfitting?

    The best epoch is the one :func:`fit` keeps: the highest validation accuracy, ties broken by the lower
    validation loss. Then:

    - **still improving**: the best epoch is one of the last ``window`` epochs. Training stopped while
      validation was still getting better, so more epochs may help;
    - **overfitting**: the best epoch lies further back, and since then the training loss went down while the
      validation loss went up: the network kept fitting its training images and got worse on new ones;
    - **levelled off**: the best epoch lies further back without that pattern: the later epochs did not beat
      it, nor clearly hurt.

    ``history`` needs the columns ``epoch``, ``train_loss``, ``val_loss`` and ``val_accuracy`` (one row per
    epoch, as :func:`fit` returns them; the rows of several runs may be concatenated in order).
    """
    needed = ["epoch", "train_loss", "val_loss", "val_accuracy"]
    missing = [column for column in needed if column not in getattr(history, "columns", ())]
    if missing:
        raise ValueError(f"read_history: the history has no column(s) {', '.join(missing)}; pass the table "
                         "that training.fit returns.")
    if len(history) == 0 or history[needed].isna().to_numpy().any():
        raise ValueError(f"read_history: the history has {len(history)} epoch(s), some without a loss or an "
                         "accuracy; train at least one epoch with a validation loader.")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"read_history: window={window!r}; give a whole number of epochs, 1 or more.")
    rows = history.reset_index(drop=True)
    best = rows.sort_values(["val_accuracy", "val_loss"], ascending=[False, True], kind="stable").index[0]
    best_row, last_row = rows.loc[best], rows.iloc[-1]
    best_epoch, last_epoch = int(best_row["epoch"]), int(last_row["epoch"])
    train_change = float(last_row["train_loss"] - best_row["train_loss"])
    val_change = float(last_row["val_loss"] - best_row["val_loss"])
    since = len(rows) - 1 - best
    where = (f"the best validation accuracy ({best_row['val_accuracy']:.1%}) came at epoch {best_epoch} of "
             f"{last_epoch}")
    if since < window:
        verdict = "still improving"
        why = (f"{where}, among the last {window}: training stopped while validation was still getting better, "
               "so more epochs may help.")
    elif train_change < 0 < val_change:
        verdict = "overfitting"
        why = (f"{where}; in the {since} epoch(s) since, the training loss fell ({best_row['train_loss']:.3f} -> "
               f"{last_row['train_loss']:.3f}) while the validation loss rose ({best_row['val_loss']:.3f} -> "
               f"{last_row['val_loss']:.3f}): the network kept fitting its training images and got worse on "
               "new ones.")
    else:
        verdict = "levelled off"
        why = (f"{where}; the {since} epoch(s) since did not beat it, and the validation loss went "
               f"{'up' if val_change > 0 else 'down'} ({best_row['val_loss']:.3f} -> {last_row['val_loss']:.3f}) "
               f"while the training loss went {'down' if train_change < 0 else 'up'}: more epochs neither "
               "helped nor clearly hurt.")
    return HistoryReading(verdict, best_epoch, last_epoch, float(best_row["val_accuracy"]), train_change,
                          val_change, f"{verdict.capitalize()}: {why}")


def fit(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module | None = None,
    scheduler: Any | None = None,
    device: torch.device | str | None = None,
    early_stopping_patience: int | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    resume: bool = False,
    checkpoint_metadata: Mapping[str, Any] | None = None,
    verbose: bool = True,
    mixed_precision: bool | None = None,
    channels_last: bool | None = None,
    first_epoch: int = 1,
    batchnorm: str = "train",
    scheduler_step: str = "epoch",
) -> pd.DataFrame:
    """Train ``model`` for ``epochs`` epochs and return the history, one row per epoch.

    Columns: epoch, train_loss, train_accuracy, val_loss, val_accuracy, learning_rate (of the first
    parameter group, during that epoch), seconds. At the end the model holds the weights of its best
    epoch (``history.attrs["best_epoch"]``). ``device`` defaults to where the model already is.
    ``early_stopping_patience=N`` stops after N epochs without a better validation accuracy.
    ``checkpoint_path`` saves the state after every epoch, atomically: the *last* epoch's weights,
    optimizer, scheduler, history, best weights and random states. ``checkpoint_metadata`` (``arch``,
    ``classes``, ``mean``, ``std``, ``input_size``, ``model_config``; other keys go to ``extra``) makes
    the file rebuildable with ``build_model_from_checkpoint``. ``resume=True`` continues from that file
    when it exists (build model, optimizer, scheduler and loaders as before: see the module docstring).
    To keep the *best* model, call ``save_checkpoint`` after ``fit`` returns.
    ``mixed_precision`` defaults to on for CUDA (never used on the CPU). ``channels_last`` (default:
    :data:`course_utils.devices.CHANNELS_LAST`, on) trains in the faster channels-last memory format; the
    history agrees with the contiguous format up to float rounding and checkpoints load either way. On the
    CPU the optimizer runs fused where you left the choice to PyTorch (:func:`use_fused_optimizer`).
    ``first_epoch`` is the number the first epoch gets in the history and the messages, to continue a count
    begun elsewhere (lesson 1 trains 2 epochs by hand, then calls ``fit(..., first_epoch=3)``).
    ``scheduler_step="batch"`` steps the scheduler after every batch instead of every epoch (``OneCycleLR`` and
    other warm-up schedules are built for that).

    **BatchNorm while fine-tuning** (``batchnorm``): a BatchNorm layer in training mode normalises each batch
    with the batch's own mean and variance and moves its running statistics towards them; in inference (eval)
    mode it uses the running statistics learnt on ImageNet and leaves them alone. Two schools:

    - ``"train"`` (the default, PyTorch's behaviour; fastai's ``train_bn=True`` goes further and trains the
      BatchNorm layers even in a frozen body): the statistics follow your data, batch by batch.
    - ``"frozen"`` (the Keras transfer-learning guide: keep BatchNorm in inference mode when you unfreeze the
      body): every BatchNorm layer stays in eval mode during the training epochs (set again after each
      ``model.train()``), so running means and variances do not change at all. Their scale and shift (the
      affine weights) still train when they are trainable (``requires_grad``), as in the Keras guide.

    Layers whose parameters are all frozen stay in eval mode in both modes. Neither mode always wins: "frozen"
    did better and never collapsed on lesson 5's practice folder, while on a folder of scanned digits (dark ink
    on white, far from ImageNet's statistics) it stayed at chance on some seeds where "train" learnt (figures in
    ``benchmarks/README.md``, "Figures behind the package's defaults"). Decide it on the validation split.

    **Several processes** (``torchrun``, see :mod:`course_utils.distributed` and ``course_tools/train.py``): pass
    the model wrapped in ``DistributedDataParallel`` and loaders whose samplers shard the splits. Loss and
    accuracy are summed over the ranks before they are averaged, ``set_epoch(epoch)`` is called on the training
    loader's sampler when it has one (a ``DistributedSampler`` then shuffles anew each epoch), only rank 0 shows
    progress, prints and writes ``checkpoint_path``, and checkpoints hold the model inside the wrapper. In one
    process none of this changes anything.
    """
    from course_utils.checkpoints import save_checkpoint

    if first_epoch < 1:
        raise ValueError(f"first_epoch must be at least 1, not {first_epoch}.")
    _check_batchnorm(batchnorm)
    if scheduler_step not in ("epoch", "batch"):
        raise ValueError(f"scheduler_step={scheduler_step!r}: choose 'epoch' or 'batch'.")
    per_batch = scheduler if scheduler_step == "batch" else None
    offset = first_epoch - 1  # epoch numbers in the history and messages = the run's own count + offset
    # Under torchrun (course_utils.distributed) every rank trains; only rank 0 prints and writes checkpoints, and
    # checkpoints hold the model inside the DistributedDataParallel wrapper, so they load in one process.
    verbose = verbose and is_main_process()
    plain_model = unwrap(model)

    device, loss_fn, use_amp = _settings(model, device, loss_fn, mixed_precision)
    prepare_model(model, device, channels_last)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history: list[dict[str, float]] = []
    best_row: dict[str, float] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    metadata = dict(checkpoint_metadata or {})
    extra = {key: value for key, value in metadata.items() if key not in (*_CHECKPOINT_FIELDS, "extra")}
    extra.update(metadata.get("extra", {}))
    if first_epoch == 1:
        rewind_loader(train_loader)  # the same seed gives the same epochs when the cell runs again
    if resume and checkpoint_path is not None and Path(checkpoint_path).is_file():
        history, best_row, best_state = _resume_from(checkpoint_path, plain_model, optimizer, scheduler, scaler,
                                                     train_loader, verbose=verbose)
    elif resume and verbose:
        messages.say(f"No checkpoint at {display_path(checkpoint_path)} yet: starting from epoch {first_epoch}.")

    def save_epoch(row: dict[str, float]) -> None:
        training_state = {"history": history, "best_state": best_state, "best_epoch": best_row["epoch"],
                          "scaler": scaler.state_dict(), "rng": _rng_state(train_loader)}
        save_checkpoint(checkpoint_path, plain_model, epoch=row["epoch"], metrics=row, optimizer=optimizer,
                        scheduler=scheduler, extra={**extra, "training": training_state},
                        **{field: metadata.get(field) for field in _CHECKPOINT_FIELDS})

    batches = len(train_loader) if hasattr(train_loader, "__len__") else None
    bar = _open_epoch_bar(epochs, len(history), verbose)
    epochs_left = range(len(history) + 1 + offset, epochs + 1 + offset)
    if _patience_ran_out(history, best_row, early_stopping_patience):
        epochs_left = range(0)  # a resumed run that had already stopped early
    stopped_now = False  # early stopping ended this call's training (said in one line)
    for epoch in epochs_left:
        row = _train_epoch(epoch, model, train_loader, val_loader, optimizer, loss_fn, device, scaler, use_amp,
                           _RunProgress(bar, batches), channels_last, batchnorm, scheduler, per_batch)
        history.append(row)
        if _is_better(row, best_row):
            best_row, best_state = row, _cpu_copy(plain_model)
        _show_epoch(bar, row)
        if checkpoint_path is not None and is_main_process():
            save_epoch(row)
        if _patience_ran_out(history, best_row, early_stopping_patience):
            stopped_now = True
            break

    _close_epoch_bar(bar, history)
    if stopped_now and verbose:
        messages.say(f"Early stopping after epoch {history[-1]['epoch']}: no better validation accuracy for "
                     f"{early_stopping_patience} epoch(s).")
    _restore_best(plain_model, best_row, best_state, history, verbose)
    return _history_frame(history, best_row["epoch"] if best_row else None)


def _open_epoch_bar(epochs: int, done: int, verbose: bool) -> Any:
    """The bar of :func:`fit`: one step per epoch, ``done`` of them already (a resumed run)."""
    bar = open_progress_bar(total=epochs, initial=done, description="epochs", unit="epoch", show=verbose,
                            leave=True, mininterval=BAR_REFRESH_SECONDS, dynamic_ncols=True)
    if not is_widget_bar(bar):
        bar.mininterval = TEXT_BAR_REFRESH_SECONDS  # a log keeps every redraw: a few lines per run
    return bar


def _show_epoch(bar: Any, row: Mapping[str, float]) -> None:
    """One epoch done: the bar moves on and shows the epoch's metrics beside it."""
    bar.set_postfix({"loss": f"{row['train_loss']:.4f}", "acc": f"{row['train_accuracy']:.3f}",
                     "val_loss": f"{row['val_loss']:.4f}", "val_acc": f"{row['val_accuracy']:.3f}"}, refresh=False)
    bar.update(1)


def _close_epoch_bar(bar: Any, history: Sequence[Mapping[str, float]]) -> None:
    """Close the bar; a widget bar becomes one line (epochs, time, last epoch's metrics) that saved notebooks keep."""
    last = history[-1] if history else None
    close_progress_bar(bar, None if last is None else (
        f"{len(history)} epoch(s) in {sum(row['seconds'] for row in history):.0f} s; last epoch: "
        f"loss {last['train_loss']:.4f}, acc {last['train_accuracy']:.3f}, val_loss {last['val_loss']:.4f}, "
        f"val_acc {last['val_accuracy']:.3f}"))


def _restore_best(model: nn.Module, best_row: Mapping[str, float] | None, best_state: Mapping[str, Any] | None,
                  history: Sequence[Mapping[str, float]], verbose: bool) -> None:
    """Load the best epoch's weights into ``model`` (saying so when it is not the last epoch)."""
    if best_state is None:
        return
    model.load_state_dict(best_state)
    if verbose and best_row["epoch"] != history[-1]["epoch"]:
        messages.say(f"Restored the best weights: epoch {best_row['epoch']}, "
                     f"val accuracy {best_row['val_accuracy']:.3f}.")


def _patience_ran_out(history: list[dict[str, float]], best_row: Mapping[str, float] | None,
                      patience: int | None) -> bool:
    """Early stopping: whether the last epoch in ``history`` is ``patience`` epochs or more after the best one."""
    if patience is None or best_row is None or not history:
        return False
    return history[-1]["epoch"] - best_row["epoch"] >= patience


def _train_epoch(epoch: int, model: nn.Module, train_loader: Iterable, val_loader: Iterable,
                 optimizer: torch.optim.Optimizer, loss_fn: nn.Module, device: torch.device, scaler: Any,
                 use_amp: bool, progress: Any, channels_last: bool | None, batchnorm: str, scheduler: Any,
                 per_batch: Any) -> dict[str, float]:
    """One epoch of :func:`fit`: train, evaluate, step an epoch scheduler; the history's row."""
    started = time.perf_counter()
    learning_rate = optimizer.param_groups[0]["lr"]
    if hasattr(getattr(train_loader, "sampler", None), "set_epoch"):
        train_loader.sampler.set_epoch(epoch)  # a DistributedSampler shuffles anew each epoch
    train_loss, train_accuracy = train_one_epoch(
        model, train_loader, optimizer, loss_fn, device, scaler=scaler, mixed_precision=use_amp,
        progress_bar=progress, channels_last=channels_last, batchnorm=batchnorm, batch_scheduler=per_batch)
    val_loss, val_accuracy = evaluate_loss_accuracy(model, val_loader, loss_fn, device, mixed_precision=use_amp,
                                                    channels_last=channels_last)
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(val_loss)
    elif scheduler is not None and per_batch is None:
        scheduler.step()
    return {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy, "val_loss": val_loss,
            "val_accuracy": val_accuracy, "learning_rate": learning_rate, "seconds": time.perf_counter() - started}


def _resume_from(checkpoint_path: str | os.PathLike[str], model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: Any, scaler: Any, train_loader: Iterable,
                 *, verbose: bool) -> tuple[list[dict[str, float]], dict[str, float], dict[str, torch.Tensor]]:
    """Load :func:`fit`'s per-epoch checkpoint into the model, optimizer, scheduler, scaler and the loader's
    random state, after checking it; return ``(history, best_row, best_state)``."""
    from course_utils.checkpoints import check_compatible, check_training_state, load_training_states, read_checkpoint

    checkpoint = read_checkpoint(checkpoint_path)
    training = check_training_state(checkpoint, checkpoint_path, HISTORY_COLUMNS)
    check_compatible(model, checkpoint["model_state"], checkpoint["metadata"])
    load_training_states(checkpoint, checkpoint_path, optimizer, scheduler)
    model.load_state_dict(checkpoint["model_state"])
    if training["scaler"]:
        scaler.load_state_dict(training["scaler"])
    history = [dict(row) for row in training["history"]]
    best_row = next(row for row in history if row["epoch"] == training["best_epoch"])
    _set_rng_state(training["rng"], train_loader)
    if verbose:
        messages.say(f"Resuming from {display_path(checkpoint_path)}: {len(history)} epoch(s) done, "
                     f"best val accuracy {best_row['val_accuracy']:.3f} at epoch {best_row['epoch']}.")
    return history, best_row, training["best_state"]



# ----------------------------------------------------------------------------------------------------------
# Fine-tuning in two stages
# ----------------------------------------------------------------------------------------------------------

#: Stage 1 of :func:`fine_tune` stops when the head's validation accuracy has not improved for this many epochs.
HEAD_PATIENCE = 5


def _validation_labels(val_loader: Iterable, cached_features: Mapping[str, Any] | None) -> torch.Tensor:
    """The labels of the validation split: from the cached features, the loader's samples, or one pass."""
    if cached_features is not None:
        return torch.as_tensor(cached_features["val"][1])
    samples = getattr(getattr(val_loader, "dataset", None), "samples", None)
    if samples and all(hasattr(sample, "label") for sample in samples):
        return torch.tensor([int(sample.label) for sample in samples])
    return torch.cat([torch.as_tensor(targets).reshape(-1) for _, targets in val_loader])


def epochs_for_steps(epochs: int, batches_per_epoch: int, min_steps: int, *, verbose: bool = True) -> int:
    """How many epochs give at least ``min_steps`` optimizer steps: ``epochs``, or more when an epoch is short.

    An epoch is one pass over the training images, so its number of weight updates is the number of batches: 12
    on lesson 3's traffic signs, 3 or 4 on a folder of about a hundred images in batches of 32. A fine-tuning
    schedule chosen in epochs on the first data is far shorter on the second. This keeps the steps instead: with
    ``min_steps=24``, 3 epochs stay 3 on the signs (36 steps) and become 8 on a 3-batch folder. Prints one line when
    it raises the count (``verbose``). Lessons apply it only when you left EPOCHS at its default.
    """
    if epochs < 1 or batches_per_epoch < 1 or min_steps < 0:
        raise ValueError(f"epochs_for_steps needs epochs >= 1, batches_per_epoch >= 1 and min_steps >= 0; got "
                         f"{epochs}, {batches_per_epoch} and {min_steps}.")
    needed = math.ceil(min_steps / batches_per_epoch)
    if needed <= epochs:
        return epochs
    if verbose:
        messages.say(f"ℹ️ Fine-tuning for {needed} epochs instead of {epochs}: an epoch is {batches_per_epoch} "
                     f"batch(es) here, and fine-tuning takes at least {min_steps} steps (min_fine_tune_steps).")
    return needed


def chance_level(labels: torch.Tensor) -> float:
    """What always answering the most common class scores on these labels."""
    return float(torch.bincount(labels.long()).max()) / len(labels) if len(labels) else 0.0


def _train_head(model: nn.Module, train_loader: Iterable, val_loader: Iterable, *, epochs: int, head_lr: float,
                weight_decay: float, cached_features: Mapping[str, Any] | None, loss_fn: nn.Module | None,
                device: torch.device | str | None, verbose: bool) -> pd.DataFrame:
    """Stage 1 of :func:`fine_tune`: the body frozen, the head trained (on cached features when given)."""
    freeze_backbone(model)
    head = find_head(model)[1] if cached_features is not None else model
    optimizer = torch.optim.AdamW([p for p in head.parameters() if p.requires_grad], lr=head_lr,
                                  weight_decay=weight_decay)
    if cached_features is not None:
        batch_size = getattr(train_loader, "batch_size", None) or 64
        seed = int(torch.randint(2**31 - 1, ()))  # from the global seed: torch.manual_seed(SEED) fixes it
        train_loader = DataLoader(TensorDataset(*cached_features["train"]), batch_size=batch_size, shuffle=True,
                                  generator=torch.Generator().manual_seed(seed))
        val_loader = DataLoader(TensorDataset(*cached_features["val"]), batch_size=256)
        device = device if device is not None else model_device(model)
    return fit(head, train_loader, val_loader, epochs=epochs, optimizer=optimizer, loss_fn=loss_fn, device=device,
               early_stopping_patience=HEAD_PATIENCE, verbose=verbose)


def best_row(history: pd.DataFrame) -> dict[str, float]:
    """The row of the epoch whose weights :func:`fit` kept (``history.attrs["best_epoch"]``)."""
    return history.loc[history["epoch"] == history.attrs["best_epoch"]].iloc[0].to_dict()


def kept_epoch_is_better(history: pd.DataFrame, other: pd.DataFrame) -> bool:
    """Whether the epoch :func:`fit` kept in ``history`` beats the one kept in ``other`` on validation: higher
    accuracy, on a tie lower loss (the rule :func:`fit` keeps its best epoch by)."""
    return _is_better(best_row(history), best_row(other))


def body_stage_optimizer(model: nn.Module, *, head_lr: float, body_lr_factor: float, total_steps: int,
                         warmup_fraction: float = 0.3, weight_decay: float = 0.01) -> tuple[Any, Any]:
    """Stage 2 of :func:`fine_tune`: ``(optimizer, scheduler)`` for the head and the trainable body.

    AdamW with the head at ``head_lr`` and the body at ``head_lr * body_lr_factor``; each rate warms up from a
    fifth of its value over the first ``warmup_fraction`` of ``total_steps`` batches, then decays along a cosine
    (``OneCycleLR``: pass ``scheduler_step="batch"`` to :func:`fit`).
    """
    groups = parameter_groups(model, head_lr=head_lr, body_lr=head_lr * body_lr_factor)
    optimizer = torch.optim.AdamW(groups, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[group["lr"] for group in groups], total_steps=total_steps, pct_start=warmup_fraction,
        div_factor=5.0)
    return optimizer, scheduler


def stage_two_failure(history: pd.DataFrame, chance: float) -> str | None:
    """Why a fine-tuning stage cannot be kept whatever it scored: its loss became non-finite (nan, inf), or its
    validation accuracy never rose above ``chance`` (see :func:`chance_level`); None when it trained normally."""
    losses = history[["train_loss", "val_loss"]].to_numpy(dtype=float)
    if not np.isfinite(losses).all():
        epoch = int(history["epoch"].iloc[int(np.flatnonzero(~np.isfinite(losses).all(axis=1))[0])])
        return f"its loss became non-finite at epoch {epoch}"
    if chance < 1 and history["val_accuracy"].max() <= chance:
        return f"its validation accuracy never rose above chance ({chance:.1%}, the most common class)"
    return None


def stage_two_problem(history: pd.DataFrame, chance: float,
                      stage_one: pd.DataFrame | None = None) -> tuple[str | None, bool]:
    """Why a fine-tuning stage is not kept, and whether it failed: ``(reason, True)`` when
    :func:`stage_two_failure` names one, ``(reason, False)`` when its kept epoch does not beat the one kept in
    ``stage_one`` on validation (:func:`kept_epoch_is_better`; only with ``stage_one``), else ``(None, False)``.
    :func:`fine_tune` and ``course train`` keep or drop stage 2 by this one rule."""
    failure = stage_two_failure(history, chance)
    if failure is not None:
        return failure, True
    if stage_one is not None and not kept_epoch_is_better(history, stage_one):
        return (f"its best validation accuracy, {best_row(history)['val_accuracy']:.1%}, did not beat stage 1's "
                f"{best_row(stage_one)['val_accuracy']:.1%}"), False
    return None, False


def fine_tune(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable,
    *,
    epochs: int,
    head_epochs: int = 20,
    head_lr: float = 1e-3,
    body_lr_factor: float = 0.1,
    last_blocks: int | None = None,
    batchnorm: str = "frozen",
    cached_features: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    warmup_fraction: float = 0.3,
    weight_decay: float = 0.01,
    keep_better: bool = True,
    loss_fn: nn.Module | None = None,
    device: torch.device | str | None = None,
    verbose: bool = True,
) -> pd.DataFrame:
    """Fine-tune a pretrained model in two stages, head first; return one history with a ``stage`` column.

    ``model`` is a backbone with a new head (:func:`course_utils.models.replace_head`); it is trained in place.

    **Stage 1** (``stage`` 1): the body is frozen and only the head trains (AdamW, ``head_lr``) for up to
    ``head_epochs`` epochs, stopping once validation accuracy has not improved for :data:`HEAD_PATIENCE` epochs.
    A trained head first means stage 2 does not start by pushing a random head's large errors into the
    pretrained body. Pass ``cached_features={"train": (features, labels), "val": (features, labels)}`` (as
    :func:`course_utils.features.compute_features` returns them, computed with the evaluation transform) to
    train the head on them: seconds instead of minutes, but without augmentation. ``head_epochs=0`` skips
    stage 1, for a head you trained already.

    **Stage 2** (``stage`` 2): the last ``last_blocks`` blocks of the body (``None``: all of them, see
    :func:`course_utils.models.unfreeze`) train with the head for ``epochs`` epochs. Discriminative learning
    rates: the body learns at ``head_lr * body_lr_factor`` (``body_lr_factor=1``: one shared rate). Each rate
    warms up from a fifth of its value over the first ``warmup_fraction`` of the batches, then decays along a
    cosine to almost zero (``OneCycleLR``, stepped every batch, as in fastai's ``fine_tune``). ``batchnorm``
    goes to :func:`fit`, whose docstring explains the choice. Its default here is ``"frozen"``: the head of stage
    1 learnt on features computed with BatchNorm in inference mode (cached features are computed in eval mode),
    and ``"train"`` would hand it different features from the first batch of stage 2 on (on the synthetic
    signs stage 2 lost validation accuracy with ``"train"`` and gained with ``"frozen"``: figures in
    ``benchmarks/README.md``). On images far from ImageNet's try ``"train"`` too.

    **Safety net**: when stage 2's loss becomes non-finite (nan, inf) or its validation accuracy never rises
    above chance (the share of the most common class), one line says so and the model goes back to the
    stage-1 weights, body frozen again. With ``keep_better=True`` (default) the same happens when stage 2's
    best epoch is not better on validation than stage 1's (accuracy, then loss): fine-tuning must earn its
    place. Otherwise the model keeps stage 2's best epoch, as after :func:`fit`; ``keep_better=False`` keeps
    stage 2 whenever it trained normally (to measure fine-tuning on its own).

    Returns :func:`fit`'s history with a ``stage`` column (1 or 2), epochs counted on across the stages.
    ``history.attrs["kept_stage"]`` (1 or 2) and ``history.attrs["best_epoch"]`` say which weights the model
    holds; ``history.attrs["problem"]`` is why stage 2 was dropped, else None.
    """
    _check_batchnorm(batchnorm)
    if epochs < 1 or head_epochs < 0:
        raise ValueError(f"fine_tune needs epochs >= 1 and head_epochs >= 0, got {epochs} and {head_epochs}.")
    if not (head_lr > 0 and body_lr_factor > 0 and 0 < warmup_fraction < 1):
        raise ValueError(f"head_lr and body_lr_factor must be > 0 and warmup_fraction between 0 and 1, got "
                         f"{head_lr}, {body_lr_factor} and {warmup_fraction}.")
    if cached_features is not None and not {"train", "val"} <= set(cached_features):
        raise ValueError("cached_features needs the keys 'train' and 'val', each (features, labels).")
    stages = []
    if head_epochs:
        head_history = _train_head(model, train_loader, val_loader, epochs=head_epochs, head_lr=head_lr,
                                   weight_decay=weight_decay, cached_features=cached_features, loss_fn=loss_fn,
                                   device=device, verbose=verbose)
        stages.append(head_history.assign(stage=1))
    stage_one_state = _cpu_copy(model)
    head_rows = len(stages[0]) if stages else 0

    unfreeze(model, last_blocks)
    optimizer, scheduler = body_stage_optimizer(model, head_lr=head_lr, body_lr_factor=body_lr_factor,
                                                total_steps=epochs * len(train_loader),
                                                warmup_fraction=warmup_fraction, weight_decay=weight_decay)
    body_history = fit(model, train_loader, val_loader, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
                       scheduler_step="batch", loss_fn=loss_fn, device=device, verbose=verbose,
                       batchnorm=batchnorm, first_epoch=head_rows + 1)
    stages.append(body_history.assign(stage=2))
    history = pd.concat(stages, ignore_index=True)[["epoch", "stage", *HISTORY_COLUMNS[1:]]]
    problem, failed = stage_two_problem(body_history,
                                        chance_level(_validation_labels(val_loader, cached_features)),
                                        stages[0] if keep_better and head_rows else None)
    advice = "try a smaller head_lr or body_lr_factor (find_learning_rate), or the other batchnorm mode"
    icon = "⚠️"
    if problem is not None and not failed:
        advice, icon = "fine-tuning did not help here; " + advice, "ℹ️"
    kept_stage, best_epoch = 2, body_history.attrs.get("best_epoch")
    if problem is not None:
        model.load_state_dict(stage_one_state)
        freeze_backbone(model)
        kept_stage, best_epoch = 1, (stages[0].attrs.get("best_epoch") if head_rows else None)
        line = (f"{icon} Fine-tuning (stage 2) was not kept: {problem}; the model holds the stage-1 weights (the head "
                f"on the frozen body). {advice[0].upper()}{advice[1:]}.")
        (messages.warn if failed else messages.say)(line)
    history.attrs.update(best_epoch=best_epoch, kept_stage=kept_stage, problem=problem)
    return history


# ----------------------------------------------------------------------------------------------------------
# The learning-rate finder
# ----------------------------------------------------------------------------------------------------------


@dataclass
class LearningRateFinderResult:
    """What :func:`find_learning_rate` measured: one smoothed loss per learning rate tried, and a suggestion.

    ``suggestion`` is the rate at the lowest smoothed loss divided by 10 (None when the loss never fell);
    ``steepest`` is the rate where the smoothed loss fell fastest (None when it never fell), shown for
    comparison; ``diverged`` tells whether the sweep stopped early because the loss blew up.
    """

    rates: list[float]
    losses: list[float]
    suggestion: float | None
    steepest: float | None
    diverged: bool

    def __str__(self) -> str:
        if not self.rates:
            return "Learning-rate finder: no step was measured."
        ending = "stopped when the loss diverged" if self.diverged else "ran to the end"
        if self.suggestion is None:
            return (f"Learning-rate finder: {len(self.rates)} rates from {self.rates[0]:.1e} to {self.rates[-1]:.1e}, "
                    f"{ending}; the loss never fell, so there is no suggestion.")
        return (f"Learning-rate finder: {len(self.rates)} rates from {self.rates[0]:.1e} to {self.rates[-1]:.1e}, "
                f"{ending}; lowest loss at {10 * self.suggestion:.1e}, suggested learning rate "
                f"{self.suggestion:.1e} (a tenth of it)")


def _rate_suggestions(rates: list[float], losses: list[float]) -> tuple[float | None, float | None]:
    """``(minimum / 10, steepest descent)`` of a smoothed loss curve; None where the loss never fell."""
    lowest = int(np.argmin(losses)) if losses else 0
    if lowest == 0:
        return None, None
    slopes = np.gradient(np.asarray(losses[:lowest + 1]), np.log10(rates[:lowest + 1]))
    return rates[lowest] / 10, rates[int(np.argmin(slopes))]


def find_learning_rate(
    model: nn.Module,
    train_loader: Iterable,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    loss_fn: nn.Module | None = None,
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    steps: int = 100,
    smoothing: float = 0.9,
    batchnorm: str = "train",
    device: torch.device | str | None = None,
    verbose: bool = True,
) -> LearningRateFinderResult:
    """A learning-rate range test (Leslie Smith, 2015; fastai's ``lr_find``): which learning rate trains fastest?

    Trains for ``steps`` batches (going round ``train_loader`` again if it is shorter) while the learning rate
    grows exponentially from ``start_lr`` to ``end_lr``, and records the loss of each batch, smoothed with an
    exponential moving average (weight ``smoothing`` on the past, bias-corrected). The sweep stops early when
    the smoothed loss exceeds 4 times its lowest value, or a loss is non-finite: the rate is too high.

    The suggestion is the rate at the **lowest smoothed loss divided by 10** (fastai's "minimum" rule): at the
    minimum the rate is already at the edge of diverging, so a tenth of it trains fast and stays stable. The
    rate of the steepest descent is returned as ``steepest`` for comparison (on short, noisy sweeps it jumps
    around more). Read the curve (:func:`course_utils.plots.plot_learning_rate_finder`), not only the number.

    ``optimizer`` defaults to AdamW over the trainable parameters. With several parameter groups (for example
    :func:`course_utils.models.parameter_groups`) every group's rate keeps its ratio to the first group's; the
    rates reported are the first group's. ``batchnorm`` as in :func:`fit`.

    Afterwards the model (weights, BatchNorm statistics, gradients, train/eval mode), the optimizer and the
    random states (``random``, numpy, torch, the loader's generator) are exactly as before: the test costs
    time, not results. When the loss rises from the very first rate, one line says so and ``suggestion`` is
    None: start lower.
    """
    _check_batchnorm(batchnorm)
    if not (0 < start_lr < end_lr) or steps < 2 or not 0 <= smoothing < 1:
        raise ValueError(f"find_learning_rate needs 0 < start_lr < end_lr, steps >= 2 and 0 <= smoothing < 1, "
                         f"got start_lr={start_lr}, end_lr={end_lr}, steps={steps}, smoothing={smoothing}.")
    device, loss_fn, use_amp = _settings(model, device, loss_fn, mixed_precision=None)
    if optimizer is None:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=start_lr)
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_modes = {module: module.training for module in model.modules()}
    saved_gradients = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
    saved_random = _rng_state(train_loader)
    first_rate = optimizer.param_groups[0]["lr"]
    ratios = [group["lr"] / first_rate if first_rate else 1.0 for group in optimizer.param_groups]
    rates: list[float] = []
    losses: list[float] = []
    diverged = False
    try:
        prepare_model(model, device, None)
        _set_training_mode(model, batchnorm)
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        batches = iter(train_loader)
        average, lowest = 0.0, math.inf
        for step in range(steps):
            try:
                inputs, targets = next(batches)
            except StopIteration:
                batches = iter(train_loader)
                inputs, targets = next(batches, (None, None))
                if inputs is None:
                    raise ValueError("The training loader yielded no batches; check the data set and batch "
                                     "size.") from None
            rate = start_lr * (end_lr / start_lr) ** (step / (steps - 1))
            for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
                group["lr"] = rate * ratio
            optimizer.zero_grad(set_to_none=True)
            with run_autocast(device, use_amp):
                loss = loss_fn(model(batch_to_device(inputs, device, None)), targets.to(device))
            value = float(loss.item())
            if not math.isfinite(value):
                diverged = True
                break
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            average = smoothing * average + (1 - smoothing) * value
            smoothed = average / (1 - smoothing ** (step + 1))
            rates.append(rate)
            losses.append(smoothed)
            lowest = min(lowest, smoothed)
            if smoothed > 4 * lowest:
                diverged = True
                break
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        for module, training in saved_modes.items():
            module.training = training
        for parameter, gradient in zip(model.parameters(), saved_gradients, strict=True):
            parameter.grad = gradient
        _set_rng_state(saved_random, train_loader)
    suggestion, steepest = _rate_suggestions(rates, losses)
    result = LearningRateFinderResult(rates, losses, suggestion, steepest, diverged)
    if suggestion is None:
        messages.warn(f"⚠️ The learning-rate finder found no rate that lowers the loss: it rose from the first rate on "
                      f"(start_lr={start_lr:g}); try a lower start_lr, and check the data and the loss.")
    elif verbose:
        messages.say(str(result))
    return result
