"""What a checkpoint may hold, checked before anything in it is used.

:mod:`course_utils.checkpoints` reads a file and calls these: the metadata's types and ranges
(:func:`check_metadata`), a ``model_config`` the architecture takes (:func:`check_model_config`), weights
that fit a given model (:func:`check_compatible`), and the training state that ``fit`` stores for resuming
(:func:`check_training_state`: history, best weights, scaler, random states). Each problem is one
:class:`CheckpointError` naming the file and the field; ``checkpoints`` re-exports what callers use.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from course_utils.backbones import BACKBONES
from course_utils.config import IMAGE_SIZE_RANGE, SCRATCH_CNN

__all__ = ["MAX_LAYERS", "MAX_LAYER_WIDTH", "MODEL_CONFIG_KEYS", "CheckpointError", "CheckpointMismatchError",
           "check_compatible", "check_metadata", "check_model_config", "check_training_state"]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (unsafe, damaged, or missing something)."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint was saved from a model with another architecture or another number of classes."""


#: The ``model_config`` keys each kind of model takes: a ScratchCNN's constructor settings, a backbone's head.
MODEL_CONFIG_KEYS: dict[str, tuple[str, ...]] = {SCRATCH_CNN: ("channels", "dropout", "in_channels"),
                                                 "backbone": ("hidden_units", "dropout")}


#: Bounds for layer settings read from a file: far above what a lesson uses, far below what fills a memory.
MAX_LAYER_WIDTH = 8192


MAX_LAYERS = 16


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _bad_field(path: Path, field: str, value: Any, rule: str) -> CheckpointError:
    try:
        shown = repr(value)
    except ValueError:  # a whole number of more than 4,300 digits
        shown = "a huge number"
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return CheckpointError(
        f"{path}: its metadata field {field}={shown} is not allowed ({rule}); the file is damaged or was not "
        "written by save_checkpoint: save the model again with save_checkpoint."
    )


def check_metadata(metadata: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Raise :class:`CheckpointError` naming the first metadata field of a type or value that
    :func:`save_checkpoint` never writes.

    Each field may be ``None`` (not recorded). Otherwise: ``arch`` a name; ``classes`` a list of distinct,
    non-empty names, as many as ``num_classes`` (a whole number >= 2); ``mean`` and ``std`` three finite
    numbers each, the means between 0 and 1, the standard deviations above 0; ``input_size`` and ``epoch``
    whole numbers; ``model_config``, ``metrics``, ``extra`` and ``versions`` dictionaries.
    """
    path = Path(path)
    arch = metadata.get("arch")
    if arch is not None and (not isinstance(arch, str) or not arch.strip() or len(arch) > 100):
        raise _bad_field(path, "arch", arch, "an architecture name")
    classes, num_classes = metadata.get("classes"), metadata.get("num_classes")
    if classes is not None:
        if not isinstance(classes, (list, tuple)) or not all(isinstance(name, str) and name for name in classes):
            raise _bad_field(path, "classes", classes, "a list of class names")
        if len(set(classes)) != len(classes):
            raise _bad_field(path, "classes", classes, "each class name once")
    if num_classes is not None and (not _is_whole(num_classes) or num_classes < 2):
        raise _bad_field(path, "num_classes", num_classes, "a whole number of classes, at least 2")
    if (classes is None) != (num_classes is None) or (classes is not None and len(classes) != num_classes):
        raise _bad_field(path, "classes", classes, f"one name per class of num_classes={num_classes!r}")
    for field, low, rule in (("mean", 0.0, "three numbers from 0 to 1, one per colour channel"),
                             ("std", None, "three numbers above 0, one per colour channel")):
        value = metadata.get(field)
        if value is None:
            continue
        if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(map(_is_finite_number, value)) \
                or not all((low <= number <= 1) if low is not None else number > 0 for number in value):
            raise _bad_field(path, field, value, rule)
    for field in ("input_size", "epoch"):
        value = metadata.get(field)
        if value is not None and (not _is_whole(value) or value < (1 if field == "input_size" else 0)):
            raise _bad_field(path, field, value, "a whole number")
    for field in ("model_config", "metrics", "extra", "versions"):
        value = metadata.get(field)
        if value is not None and not isinstance(value, Mapping):
            raise _bad_field(path, field, value, "a dictionary")


def _check_widths(path: Path, field: str, value: Any, *, may_be_empty: bool) -> None:
    """``value`` must be a list of at most :data:`MAX_LAYERS` widths from 1 to :data:`MAX_LAYER_WIDTH`."""
    if not isinstance(value, (list, tuple)) or len(value) > MAX_LAYERS or (not value and not may_be_empty) \
            or not all(_is_whole(width) and 1 <= width <= MAX_LAYER_WIDTH for width in value):
        raise _bad_field(path, field, value, f"a list of at most {MAX_LAYERS} layer widths from 1 to "
                                             f"{MAX_LAYER_WIDTH}")


def check_model_config(arch: str, config: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Raise :class:`CheckpointError` for a ``model_config`` key that ``arch``'s model does not take (see
    :data:`MODEL_CONFIG_KEYS`) or a value out of range: layer widths 1..:data:`MAX_LAYER_WIDTH`, dropout in
    [0, 1), ``in_channels`` 1 to 4."""
    path = Path(path)
    kind = SCRATCH_CNN if arch == SCRATCH_CNN else "backbone"
    unknown = [key for key in config if key not in MODEL_CONFIG_KEYS[kind]]
    if unknown:
        raise _bad_field(path, f"model_config.{unknown[0]}", config[unknown[0]],
                         f"a '{arch}' model takes only {', '.join(MODEL_CONFIG_KEYS[kind])}")
    if "channels" in config:
        _check_widths(path, "model_config.channels", config["channels"], may_be_empty=False)
    if "hidden_units" in config:
        _check_widths(path, "model_config.hidden_units", config["hidden_units"], may_be_empty=True)
    dropout = config.get("dropout", 0.0)
    if not _is_finite_number(dropout) or not 0 <= dropout < 1:
        raise _bad_field(path, "model_config.dropout", dropout, "a number from 0 to below 1")
    in_channels = config.get("in_channels", 3)
    if not _is_whole(in_channels) or not 1 <= in_channels <= 4:
        raise _bad_field(path, "model_config.in_channels", in_channels, "a whole number from 1 to 4")


def _check_rebuildable(metadata: Mapping[str, Any], path: Path) -> None:
    """What :func:`build_model_from_checkpoint` needs beyond :func:`check_metadata`: a known architecture, the
    classes, an input size in the course's range and settings that architecture takes."""
    arch = metadata.get("arch")
    known = [*BACKBONES, SCRATCH_CNN]
    if arch is None or metadata.get("num_classes") is None:
        raise CheckpointError(
            f"{path} does not say which architecture or how many classes it holds; "
            "save it with save_checkpoint(..., arch=..., classes=...) to make it rebuildable."
        )
    if arch not in known:
        raise _bad_field(path, "arch", arch, f"one of {', '.join(known)}")
    low, high = IMAGE_SIZE_RANGE
    size = metadata.get("input_size")
    if size is not None and not low <= size <= high:
        raise _bad_field(path, "input_size", size, f"a whole number of pixels from {low} to {high}")
    check_model_config(arch, metadata.get("model_config") or {}, path)


def _first_non_finite(state: Mapping[str, Any]) -> str | None:
    """The name of the first floating-point tensor in ``state`` holding NaN or infinity, else ``None``."""
    for key, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and (tensor.is_floating_point() or tensor.is_complex()) \
                and not bool(torch.isfinite(tensor).all()):
            return str(key)
    return None


def _first_names(names: Sequence[str], shown: int = 8) -> str:
    """The first ``shown`` names, then how many more."""
    more = f", +{len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(map(str, names[:shown])) + more


def check_compatible(
    model: nn.Module, state: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]
) -> None:
    """Raise :class:`CheckpointMismatchError` saying how ``model`` differs from a checkpoint's weights."""
    arch = metadata.get("arch") or "unknown"
    model_state = model.state_dict()
    missing = [k for k in model_state if k not in state]
    unexpected = [k for k in state if k not in model_state]
    rebuild = "or rebuild the model from the file with build_model_from_checkpoint(path)."
    if missing or unexpected:
        raise CheckpointMismatchError(
            f"Architecture mismatch: the checkpoint was saved from a '{arch}' model whose layers differ from "
            f"this model's ({len(missing)} missing, e.g. {missing[:3]}; {len(unexpected)} unexpected, "
            f"e.g. {unexpected[:3]}). Create a '{arch}' model with the same head, {rebuild}"
        )
    wrong_shapes = [k for k in state if state[k].shape != model_state[k].shape]
    if not wrong_shapes:
        return
    num_classes = metadata.get("num_classes")
    last = wrong_shapes[-1]
    classes_only = num_classes is not None and all(
        state[k].shape[0] == num_classes and state[k].shape[1:] == model_state[k].shape[1:]
        for k in wrong_shapes
    )
    if classes_only:
        model_classes = model_state[last].shape[0]
        raise CheckpointMismatchError(
            f"Class count mismatch: the checkpoint has {num_classes} classes "
            f"({_first_names(metadata.get('classes') or [])}), the model has {model_classes}. "
            f"Give the model a {num_classes}-class head (replace_head(model, {num_classes}, ...)), {rebuild}"
        )
    details = ", ".join(
        f"{k}: {tuple(state[k].shape)} vs {tuple(model_state[k].shape)}" for k in wrong_shapes[:3]
    )
    raise CheckpointMismatchError(
        f"Architecture mismatch: {len(wrong_shapes)} tensors have other shapes in the checkpoint ('{arch}') "
        f"than in this model (checkpoint vs model: {details}). Create a '{arch}' model, {rebuild}"
    )


def _optimizer_state_problem(optimizer: torch.optim.Optimizer, state: Any, named: bool) -> str | None:
    """Why ``state`` cannot be an earlier state of ``optimizer`` (``None`` when it fits).

    ``named``: the file names its optimizer class, so that settings are not compared (another PyTorch version
    may add one); a file that does not must at least have every setting of ``optimizer``'s groups.
    """
    if not isinstance(state, Mapping) or not isinstance(state.get("state"), Mapping) \
            or not isinstance(state.get("param_groups"), list):
        return "not a dictionary of state and param_groups"
    groups, stored_groups = optimizer.param_groups, state["param_groups"]
    if len(stored_groups) != len(groups):
        return f"{len(stored_groups)} parameter group(s), this optimizer has {len(groups)}"
    parameters: dict[Any, torch.Tensor] = {}
    for index, (group, stored) in enumerate(zip(groups, stored_groups, strict=True)):
        if not isinstance(stored, Mapping) or not isinstance(stored.get("params"), list):
            return f"parameter group {index} is not a dictionary with params"
        if len(stored["params"]) != len(group["params"]):
            return f"group {index} holds {len(stored['params'])} parameters, this optimizer's {len(group['params'])}"
        missing = sorted(set(group) - set(stored) - {"initial_lr"})
        if missing and not named:
            return f"it lacks the setting(s) {', '.join(missing)} of {type(optimizer).__name__}"
        parameters.update(zip(stored["params"], group["params"], strict=True))
    for key, value in state["state"].items():
        if key not in parameters or not isinstance(value, Mapping):
            return f"a state for an unknown parameter {key!r}"
        for name, item in value.items():
            if isinstance(item, torch.Tensor) and item.numel() > 1 and item.shape != parameters[key].shape:
                return f"its {name} has shape {tuple(item.shape)}, the parameter {tuple(parameters[key].shape)}"
    return None


def _rng_problem(rng: Any) -> str | None:
    """Why ``rng`` is not a set of random states as ``fit`` stores them (``None`` when it is one)."""
    if not isinstance(rng, Mapping) or set(rng) != {"python", "numpy", "torch", "cuda", "loader"}:
        return "not the random states of python, numpy, torch, cuda and the loader"
    words = range(2**32)
    python, numpy_state = rng["python"], rng["numpy"]
    if not isinstance(python, (list, tuple)) or len(python) != 3 or not _is_whole(python[0]) \
            or not isinstance(python[1], (list, tuple)) or len(python[1]) != 625 \
            or not all(_is_whole(word) and word in words for word in python[1]) \
            or not (python[2] is None or _is_finite_number(python[2])):
        return "the python random state is damaged"
    if not isinstance(numpy_state, (list, tuple)) or len(numpy_state) != 5 or numpy_state[0] != "MT19937" \
            or not isinstance(numpy_state[1], torch.Tensor) or tuple(numpy_state[1].shape) != (624,) \
            or not all(_is_whole(value) for value in numpy_state[2:4]) or not 0 <= numpy_state[2] <= 624 \
            or not _is_finite_number(numpy_state[4]) \
            or not bool(((numpy_state[1] >= 0) & (numpy_state[1] < 2**32)).all()):
        return "the numpy random state is damaged"
    size = torch.get_rng_state().numel()
    generators = [rng["torch"], *(rng["cuda"] if isinstance(rng["cuda"], list) else [None]),
                  *(rng["loader"] if isinstance(rng["loader"], list) else [None])]
    if not all(isinstance(state, torch.Tensor) and state.dtype == torch.uint8 for state in generators) \
            or rng["torch"].numel() != size or any(state.numel() != size for state in rng["loader"]):
        return "a torch generator state is damaged"
    return None


def check_training_state(
    checkpoint: Mapping[str, Any], path: str | os.PathLike[str], columns: Sequence[str]
) -> dict[str, Any]:
    """The training state :func:`course_utils.training.fit` stored in a checkpoint, after checking each part
    that resuming uses; ``columns`` are the history's columns.

    Raises :class:`CheckpointError` naming the part (history, best_epoch, best_state, scaler, rng) that is
    missing or damaged, so that a resumed run never fails halfway with a ``KeyError``.
    """
    extra = checkpoint["metadata"].get("extra") or {}
    training = extra.get("training")
    if training is None:
        raise CheckpointError(f"{path} was not written by fit(); it cannot be resumed.")

    def damaged(part: str, what: str) -> CheckpointError:
        return CheckpointError(f"{path} cannot be resumed: its training state is damaged ({part}: {what}); "
                               "resume from a copy, or delete the file to train from the start.")

    if not isinstance(training, Mapping):
        raise damaged("training", "not a dictionary")
    history = training.get("history")
    if not isinstance(history, list) or not history or not all(
            isinstance(row, Mapping) and all(isinstance(row.get(column), (int, float)) for column in columns)
            for row in history):
        raise damaged("history", f"not a list of epochs with numbers for {', '.join(columns)}")
    epochs = [row["epoch"] for row in history]
    if not all(_is_whole(epoch) for epoch in epochs) or epochs != sorted(set(epochs)):
        raise damaged("history", f"epoch numbers {epochs[:10]}")
    if training.get("best_epoch") not in epochs or not _is_whole(training.get("best_epoch")):
        raise damaged("best_epoch", f"{training.get('best_epoch')!r} is not an epoch of the history")
    best_state, model_state = training.get("best_state"), checkpoint["model_state"]
    if not isinstance(best_state, Mapping) or set(best_state) != set(model_state) or not all(
            isinstance(best_state[key], torch.Tensor) and best_state[key].shape == model_state[key].shape
            and best_state[key].dtype == model_state[key].dtype for key in model_state):
        raise damaged("best_state", "not the same tensors as the model's weights")
    non_finite = _first_non_finite(best_state)
    if non_finite is not None:
        raise damaged("best_state", f"NaN or infinity in {non_finite}")
    scaler = training.get("scaler")
    if not isinstance(scaler, Mapping) or not all(_is_finite_number(value) for value in scaler.values()):
        raise damaged("scaler", "not a dictionary of numbers")
    problem = _rng_problem(training.get("rng"))
    if problem is not None:
        raise damaged("rng", problem)
    return dict(training)
