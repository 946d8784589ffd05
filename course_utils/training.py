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
- optionally saves a checkpoint after every epoch and resumes from it.

Reproducible resume: the checkpoint stores the random number generator states of ``random``, numpy,
torch (and CUDA) and of the training loader's ``generator``. A resumed run then ends with the same
history (except the ``seconds`` column) as an uninterrupted one, provided that you build the model,
optimizer, scheduler and loaders the same way in both runs (same seed; pass a seeded
``torch.Generator`` to a shuffling ``DataLoader`` or rely on the global torch seed) and that worker
processes are not persistent (``persistent_workers=False``, or ``num_workers=0``). On a GPU some
kernels are not bit-exact, so expect agreement up to float noise there.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from course_utils.devices import batch_to_device, evaluating, model_device, prepare_model, run_autocast
from course_utils.files import display_path
from course_utils.models import set_frozen_batchnorm_eval

__all__ = ["BAR_REFRESH_SECONDS", "HISTORY_COLUMNS", "PROGRESS_EVERY_STEPS", "TEXT_BAR_REFRESH_SECONDS",
           "evaluate_loss_accuracy", "fit", "train_one_epoch", "train_step", "use_fused_optimizer"]

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
    arithmetic, equal up to float rounding, in half the time (an AdamW step over all of EfficientNet-Lite0:
    11 ms instead of 21-24 ms on 2 cores). :func:`fit` and :func:`train_one_epoch` call this.

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


def _is_widget_bar(bar: Any) -> bool:
    return any(cls.__module__ == "tqdm.notebook" for cls in type(bar).__mro__)


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
) -> tuple[float, float]:
    """Train ``model`` for one pass over ``loader``; return the example-averaged ``(loss, accuracy)``.

    ``loss_fn`` must return the mean over the batch (the default ``CrossEntropyLoss`` does). Frozen
    BatchNorm layers stay in eval mode. Loss and accuracy are summed on the device and read once at the
    end (plus every few steps for ``progress_bar``), so the GPU never waits for the Python loop.
    """
    device, loss_fn, use_amp = _settings(model, device, loss_fn, mixed_precision)
    if scaler is None:
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    prepare_model(model, device, channels_last)
    use_fused_optimizer(optimizer)
    model.train()
    set_frozen_batchnorm_eval(model)
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
        batch_size = targets.shape[0]
        loss_sum += loss.detach().to(loss_sum.dtype) * batch_size
        correct += (logits.detach().argmax(dim=1) == targets).sum()
        count += batch_size
        if progress_bar is not None:
            progress_bar.update(1)
            if step % PROGRESS_EVERY_STEPS == 0:
                running = {"loss": f"{loss_sum.item() / count:.4f}", "acc": f"{correct.item() / count:.3f}"}
                progress_bar.set_postfix(running, refresh=False)
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
    """
    from course_utils.checkpoints import check_compatible, read_checkpoint, save_checkpoint

    if first_epoch < 1:
        raise ValueError(f"first_epoch must be at least 1, not {first_epoch}.")
    offset = first_epoch - 1  # epoch numbers in the history and messages = the run's own count + offset

    device, loss_fn, use_amp = _settings(model, device, loss_fn, mixed_precision)
    prepare_model(model, device, channels_last)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history: list[dict[str, float]] = []
    best_row: dict[str, float] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    metadata = dict(checkpoint_metadata or {})
    extra = {key: value for key, value in metadata.items() if key not in (*_CHECKPOINT_FIELDS, "extra")}
    extra.update(metadata.get("extra", {}))
    if resume and checkpoint_path is not None and Path(checkpoint_path).is_file():
        checkpoint = read_checkpoint(checkpoint_path)
        training = checkpoint["metadata"]["extra"].get("training")
        if training is None:
            raise ValueError(f"{checkpoint_path} was not written by fit(); it cannot be resumed.")
        check_compatible(model, checkpoint["model_state"], checkpoint["metadata"])
        model.load_state_dict(checkpoint["model_state"])
        optimizer.load_state_dict(checkpoint["optimizer_state"])
        if scheduler is not None:
            if "scheduler_state" not in checkpoint:
                raise ValueError(f"{checkpoint_path} was saved without a scheduler; resume without one.")
            scheduler.load_state_dict(checkpoint["scheduler_state"])
        if training["scaler"]:
            scaler.load_state_dict(training["scaler"])
        history = [dict(row) for row in training["history"]]
        best_state = training["best_state"]
        best_row = next(row for row in history if row["epoch"] == training["best_epoch"])
        _set_rng_state(training["rng"], train_loader)
        if verbose:
            print(f"Resuming from {display_path(checkpoint_path)}: {len(history)} epoch(s) done, "
                  f"best val accuracy {best_row['val_accuracy']:.3f} at epoch {best_row['epoch']}.")
    elif resume and verbose:
        print(f"No checkpoint at {display_path(checkpoint_path)} yet: starting from epoch {first_epoch}.")

    batches = len(train_loader) if hasattr(train_loader, "__len__") else None
    bar = tqdm(total=epochs, initial=len(history), desc="epochs", unit="epoch", leave=True,
               mininterval=BAR_REFRESH_SECONDS, dynamic_ncols=True, disable=not verbose)
    if not _is_widget_bar(bar):
        bar.mininterval = TEXT_BAR_REFRESH_SECONDS  # a log keeps every redraw: a few lines per run
    for epoch in range(len(history) + 1 + offset, epochs + 1 + offset):
        if early_stopping_patience is not None and best_row is not None \
                and epoch - 1 - best_row["epoch"] >= early_stopping_patience:
            break  # a resumed run that had already stopped early
        started = time.perf_counter()
        learning_rate = optimizer.param_groups[0]["lr"]
        train_loss, train_accuracy = train_one_epoch(
            model, train_loader, optimizer, loss_fn, device,
            scaler=scaler, mixed_precision=use_amp, progress_bar=_RunProgress(bar, batches),
            channels_last=channels_last)
        val_loss, val_accuracy = evaluate_loss_accuracy(model, val_loader, loss_fn, device,
                                                        mixed_precision=use_amp, channels_last=channels_last)
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(val_loss)
        elif scheduler is not None:
            scheduler.step()
        row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy,
               "val_loss": val_loss, "val_accuracy": val_accuracy, "learning_rate": learning_rate,
               "seconds": time.perf_counter() - started}
        history.append(row)
        if _is_better(row, best_row):
            best_row, best_state = row, _cpu_copy(model)
        bar.set_postfix({"loss": f"{train_loss:.4f}", "acc": f"{train_accuracy:.3f}",
                         "val_loss": f"{val_loss:.4f}", "val_acc": f"{val_accuracy:.3f}"}, refresh=False)
        bar.update(1)
        if checkpoint_path is not None:
            training_state = {"history": history, "best_state": best_state, "best_epoch": best_row["epoch"],
                              "scaler": scaler.state_dict(), "rng": _rng_state(train_loader)}
            save_checkpoint(
                checkpoint_path, model, epoch=epoch, metrics=row, optimizer=optimizer, scheduler=scheduler,
                extra={**extra, "training": training_state},
                **{field: metadata.get(field) for field in _CHECKPOINT_FIELDS},
            )
        if early_stopping_patience is not None and epoch - best_row["epoch"] >= early_stopping_patience:
            bar.close()
            if verbose:
                print(f"Early stopping after epoch {epoch}: no better validation accuracy for "
                      f"{early_stopping_patience} epoch(s).")
            break

    bar.close()
    if verbose and history and _is_widget_bar(bar):
        # a saved notebook keeps only the widget's first text (0%): one line says how the run ended
        last = history[-1]
        print(f"{len(history)} epoch(s) in {sum(row['seconds'] for row in history):.0f} s; last epoch: "
              f"loss {last['train_loss']:.4f}, acc {last['train_accuracy']:.3f}, val_loss {last['val_loss']:.4f}, "
              f"val_acc {last['val_accuracy']:.3f}")
    if best_state is not None:
        model.load_state_dict(best_state)
        if verbose and best_row["epoch"] != history[-1]["epoch"]:
            print(f"Restored the best weights: epoch {best_row['epoch']}, "
                  f"val accuracy {best_row['val_accuracy']:.3f}.")
    return _history_frame(history, best_row["epoch"] if best_row else None)

