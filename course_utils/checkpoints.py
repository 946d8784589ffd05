"""Save and load model checkpoints safely: state dicts plus metadata, never pickled model objects.

A checkpoint is a plain dictionary written with ``torch.save``::

    {"format": "course_utils.checkpoint", "version": 1,
     "model_state": <state dict>, "metadata": {...}, "weights_sha256": <hex>,
     "optimizer_state": <optional>, "optimizer_class": <name>, "scheduler_state": <optional>,
     "scheduler_class": <name>, "contents_sha256": <hex>}

It holds only tensors, numbers, strings, lists, tuples and dictionaries, so it loads with
``torch.load(path, weights_only=True)``: loading it can never run code hidden in the file. The metadata
(architecture name, class names, normalisation, input size, head configuration) is enough to rebuild the
model with :func:`build_model_from_checkpoint`, without the code that trained it.

Nothing read from the file is trusted before it is checked: the file must look like a torch file at all, the
metadata's types and ranges are checked before any model is built (:func:`check_metadata`), two SHA-256
checksums cover the weights and everything else (metadata, training state, optimizer and scheduler states),
and weights that are not finite numbers (a diverged run) are refused.

Writes are atomic (a temporary file in the same folder, then ``os.replace``): a run killed mid-save
leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import platform
import zipfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from course_utils.backbones import BACKBONES, load_backbone
from course_utils.config import IMAGE_SIZE_RANGE
from course_utils.files import atomic_write
from course_utils.models import ScratchCNN, find_head, replace_head

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "MODEL_CONFIG_KEYS", "READABLE_VERSIONS", "CheckpointError",
           "CheckpointMismatchError", "build_model_from_checkpoint", "check_compatible", "check_metadata",
           "check_model_config", "check_training_state", "contents_checksum", "describe_model", "library_versions",
           "load_checkpoint", "load_training_states", "read_checkpoint", "save_checkpoint", "weights_checksum"]

CHECKPOINT_FORMAT = "course_utils.checkpoint"
CHECKPOINT_VERSION = 1
#: Versions this code can read (a file from a newer course version is refused, not misread).
READABLE_VERSIONS = (1,)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (unsafe, damaged, or missing something)."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint was saved from a model with another architecture or another number of classes."""


def library_versions() -> dict[str, str]:
    """Versions of Python, torch, torchvision and course_utils, as stored in every checkpoint."""
    import torchvision

    import course_utils

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "course_utils": course_utils.__version__,
    }


def describe_model(model: nn.Module) -> dict[str, Any]:
    """Guess the constructor settings needed to rebuild ``model`` (stored as ``model_config``).

    For a ``ScratchCNN`` these are ``channels`` and ``dropout``; for a backbone with a new head they are
    the head's ``hidden_units`` and ``dropout`` (what :func:`course_utils.models.replace_head` takes).
    Pass ``model_config=`` to :func:`save_checkpoint` yourself when the guess does not fit your model.
    """
    if isinstance(model, ScratchCNN):
        convolutions = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        dropouts = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
        return {
            "channels": [m.out_channels for m in convolutions],
            "dropout": dropouts[0] if dropouts else 0.0,
            "in_channels": convolutions[0].in_channels,
        }
    try:
        _, head = find_head(model)
    except ValueError:  # no recognisable head: nothing to describe
        return {}
    layers = list(head.modules()) if isinstance(head, nn.Sequential) else [head]
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    dropouts = [m.p for m in layers if isinstance(m, nn.Dropout)]
    return {
        "hidden_units": [m.out_features for m in linears[:-1]],
        "dropout": dropouts[0] if dropouts else 0.0,
    }


def weights_checksum(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over a state dict's names, dtypes, shapes and tensor bytes, in key order (hex string).

    Stored at save time and compared at load time, so flipped bytes inside a tensor are noticed.
    """
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key]
        digest.update(key.encode("utf-8", "surrogateescape"))
        if not isinstance(tensor, torch.Tensor):
            digest.update(repr(tensor).encode("utf-8"))
            continue
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _update_digest(digest: Any, value: Any) -> None:
    """Feed ``value`` (nested dicts, lists, tuples, tensors, plain values) into ``digest``, the same way again
    after the value went through ``torch.save`` and ``torch.load``."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"<tensor {tensor.dtype} {tuple(tensor.shape)}>".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, Mapping):
        digest.update(f"<dict {len(value)}>".encode())
        for key in sorted(value, key=repr):
            _update_digest(digest, key)
            _update_digest(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"<{type(value).__name__} {len(value)}>".encode())
        for item in value:
            _update_digest(digest, item)
    else:  # hex() for whole numbers: repr() refuses those of more than 4,300 digits
        text = hex(value) if isinstance(value, int) else repr(value)
        digest.update(f"<{type(value).__name__} {text}>".encode("utf-8", "surrogateescape"))


#: What :func:`contents_checksum` leaves out: the weights (they have their own checksum) and the checksums.
_NOT_IN_CONTENTS = ("model_state", "weights_sha256", "contents_sha256")


def contents_checksum(checkpoint: Mapping[str, Any]) -> str:
    """SHA-256 over everything in a checkpoint but its weights: metadata (with the training state :func:`fit`
    stores there: history, best weights, random states), optimizer and scheduler states (hex string)."""
    digest = hashlib.sha256()
    _update_digest(digest, {key: value for key, value in checkpoint.items() if key not in _NOT_IN_CONTENTS})
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """Turn numpy/torch scalars and paths into plain Python values so that ``weights_only`` can load them."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, type(None), torch.Tensor)):
        return value
    for plain_type in (str, int, float):  # also turns subclasses (numpy.float64, TorchVersion) plain
        if isinstance(value, plain_type):
            return plain_type(value)
    if hasattr(value, "item") and callable(value.item):  # numpy or torch scalar
        return value.item()
    return str(value)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    arch: str | None,
    classes: Sequence[str] | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    input_size: int | None,
    epoch: int | None = None,
    metrics: Mapping[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    extra: Mapping[str, Any] | None = None,
    model_config: Mapping[str, Any] | None = None,
) -> Path:
    """Save ``model``'s weights and everything needed to rebuild and use it, atomically.

    ``arch`` is the architecture name (``"scratch_cnn"``, ``"resnet18"``, ...), ``classes`` the class names
    in label order, ``mean``/``std``/``input_size`` the eval transform's settings. ``model_config`` holds
    constructor settings (guessed with :func:`describe_model` when left out). Optimizer and scheduler
    states are stored when given, so that training can resume. Returns the path.
    """
    metadata = {
        "arch": arch,
        "classes": list(classes) if classes is not None else None,
        "num_classes": len(classes) if classes is not None else None,
        "mean": list(mean) if mean is not None else None,
        "std": list(std) if std is not None else None,
        "input_size": input_size,
        "epoch": epoch,
        "metrics": dict(metrics or {}),
        "model_config": dict(model_config) if model_config is not None else describe_model(model),
        "versions": library_versions(),
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "extra": dict(extra or {}),
    }
    checkpoint: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": _plain(metadata),
    }
    checkpoint["weights_sha256"] = weights_checksum(checkpoint["model_state"])
    if optimizer is not None:
        checkpoint["optimizer_state"] = optimizer.state_dict()
        checkpoint["optimizer_class"] = type(optimizer).__name__
    if scheduler is not None:
        checkpoint["scheduler_state"] = scheduler.state_dict()
        checkpoint["scheduler_class"] = type(scheduler).__name__
    checkpoint["contents_sha256"] = contents_checksum(checkpoint)
    with atomic_write(path) as temporary:
        torch.save(checkpoint, temporary)
    return Path(path)


# ------------------------------------------------------------------------------------ what a file may hold
#: The ``model_config`` keys each kind of model takes: a ScratchCNN's constructor settings, a backbone's head.
MODEL_CONFIG_KEYS: dict[str, tuple[str, ...]] = {"scratch_cnn": ("channels", "dropout", "in_channels"),
                                                 "backbone": ("hidden_units", "dropout")}
#: Bounds for layer settings read from a file: far above what a lesson uses, far below what fills a memory.
MAX_LAYER_WIDTH = 8192
MAX_LAYERS = 16

#: The first bytes of the two kinds of torch file: a zip archive (since PyTorch 1.6) and the older pickle
#: format, which starts with torch's magic number pickled with protocol 2.
_TORCH_FILE_STARTS = (b"PK\x03\x04", b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19")


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
    kind = "scratch_cnn" if arch == "scratch_cnn" else "backbone"
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
    known = [*BACKBONES, "scratch_cnn"]
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


def _not_a_torch_file(path: Path) -> str | None:
    """What ``path`` looks like when it cannot be a torch file (``None`` when it may be one)."""
    with open(path, "rb") as file:
        start = file.read(64)
    if any(start.startswith(magic) for magic in _TORCH_FILE_STARTS):
        return None
    if not start:
        return "an empty file"
    kinds = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
             b"%PDF": "a PDF document", b"\x1f\x8b": "a gzip archive", b"\x80": "a Python pickle, not a torch file"}
    kind = next((name for magic, name in kinds.items() if start.startswith(magic)), None)
    if kind is None:
        try:
            text = start.decode("utf-8").lstrip()
        except UnicodeDecodeError:
            kind = "unknown binary data"
        else:
            kind = "JSON text" if text[:1] in ("{", "[") else "a text file"
    return kind


def _first_non_finite(state: Mapping[str, Any]) -> str | None:
    """The name of the first floating-point tensor in ``state`` holding NaN or infinity, else ``None``."""
    for key, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and (tensor.is_floating_point() or tensor.is_complex()) \
                and not bool(torch.isfinite(tensor).all()):
            return str(key)
    return None


def _read_and_check(path: str | os.PathLike[str], *, rebuildable: bool) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}.")
    try:
        kind = _not_a_torch_file(path)
    except OSError as error:
        raise CheckpointError(f"{path} cannot be read ({error.strerror or error}): check that it is yours and "
                              "readable.") from error
    if kind is not None:
        raise CheckpointError(
            f"{path} is not a checkpoint: it looks like {kind}, not a file written by torch.save; "
            "pass the .pt file that save_checkpoint (or a lesson) wrote."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path} holds pickled Python objects, not just weights, so it is refused "
            "(torch.load(weights_only=True) failed: loading it could run code hidden in the file). "
            "Only if you trust its source: load it with weights_only=False and save model.state_dict() "
            "with save_checkpoint instead."
        ) from error
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, zipfile.BadZipFile) as error:
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"{path} is not a readable checkpoint (damaged, truncated or not a torch file: "
            f"{type(error).__name__}: {first}); save it again, or copy it again from where it came from."
        ) from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is a torch file but not a course_utils checkpoint; for a bare state dict use "
            "model.load_state_dict(torch.load(path, weights_only=True))."
        )
    version = checkpoint.get("version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}, which this course_utils "
            f"({', '.join(map(str, READABLE_VERSIONS))} only) cannot read: update the course package."
        )
    missing = [key for key in ("model_state", "metadata") if key not in checkpoint]
    if missing or not isinstance(checkpoint.get("model_state"), dict) \
            or not isinstance(checkpoint.get("metadata"), dict):
        raise CheckpointError(
            f"{path} is damaged: it lacks {' and '.join(missing) or 'a valid model_state or metadata'}; "
            "save it again with save_checkpoint."
        )
    not_tensors = [(key, value) for key, value in checkpoint["model_state"].items()
                   if not isinstance(value, torch.Tensor)]
    if not_tensors:
        key, value = not_tensors[0]
        raise CheckpointError(f"{path} is damaged: its weights hold a {type(value).__name__} under {key!r}, "
                              "not a tensor; save it again with save_checkpoint.")
    check_metadata(checkpoint["metadata"], path)
    if rebuildable:
        _check_rebuildable(checkpoint["metadata"], path)
    damaged = (f"{path} is damaged: its {{}} do not match the checksum stored when it was saved (changed bytes); "
               "save it again, or copy it again from where it came from.")
    stored = checkpoint.get("weights_sha256")
    if stored is not None and stored != weights_checksum(checkpoint["model_state"]):
        raise CheckpointError(damaged.format("weights"))
    stored = checkpoint.get("contents_sha256")
    try:
        if stored is not None and stored != contents_checksum(checkpoint):
            raise CheckpointError(damaged.format("metadata, training or optimizer states"))
    except RecursionError as error:
        raise CheckpointError(f"{path} is damaged: its contents are nested too deeply.") from error
    non_finite = _first_non_finite(checkpoint["model_state"])
    if non_finite is not None:
        raise CheckpointError(
            f"{path} holds weights that are not finite numbers (NaN or infinity in {non_finite}): the training "
            "diverged before it was saved, so the model cannot predict; train again with a smaller learning "
            "rate, or use an earlier checkpoint."
        )
    return checkpoint


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint file safely (``weights_only=True``), check it and return the raw dictionary.

    Raises :class:`CheckpointError` naming the file for a file of another kind (text, JSON, an image: "not a
    checkpoint"), a file holding pickled Python objects (for example a whole model saved with
    ``torch.save(model)``, which could run code when loaded), a damaged or truncated file, one without weights
    or metadata, a format version this code does not know, metadata of the wrong type (naming the field, see
    :func:`check_metadata`), weights or other contents whose checksum differs from the one stored at save
    time, and weights that are not finite numbers.
    """
    return _read_and_check(path, rebuildable=False)


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


def load_training_states(
    checkpoint: Mapping[str, Any],
    path: str | os.PathLike[str],
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
) -> None:
    """Give ``optimizer`` and ``scheduler`` (each when given) the states stored in a checkpoint, checked first.

    Raises :class:`CheckpointError` when the file holds no such state, holds one of another class (an SGD
    state for an Adam optimizer), or one that does not fit this optimizer's parameters.
    """
    for name, target in (("optimizer", optimizer), ("scheduler", scheduler)):
        if target is None:
            continue
        if f"{name}_state" not in checkpoint:
            raise CheckpointError(
                f"{path} holds no {name} state (it was saved without one): resume without a {name}, or save "
                f"it with save_checkpoint(..., {name}=...)."
            )
        state = checkpoint[f"{name}_state"]
        saved_class, this_class = checkpoint.get(f"{name}_class"), type(target).__name__
        if saved_class is not None and saved_class != this_class:
            raise CheckpointError(
                f"{path} was saved with the {name} {saved_class}; this one is {this_class}: create the same "
                f"{name} as in the run that saved it."
            )
        if name == "optimizer":
            problem = _optimizer_state_problem(target, state, named=saved_class is not None)
        else:
            problem = None if isinstance(state, Mapping) else "not a dictionary"
        if problem is None:
            try:
                target.load_state_dict(state)
            except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as error:
                problem = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:120]}"
        if problem is not None:
            raise CheckpointError(
                f"{path}: its {name} state does not fit this {this_class} ({problem}): create the same {name} as "
                "in the run that saved it, over the same parameters."
            )


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


def load_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
) -> dict[str, Any]:
    """Load a checkpoint safely and return its metadata (arch, classes, mean, std, input_size, epoch, ...).

    When ``model`` is given its weights are replaced by the stored ones; a model of another architecture
    or class count raises :class:`CheckpointMismatchError` that says which. ``optimizer`` and ``scheduler``
    get their stored states when given (to resume training), after :func:`load_training_states` checked them.
    """
    checkpoint = read_checkpoint(path)
    metadata = checkpoint["metadata"]
    if model is not None:
        check_compatible(model, checkpoint["model_state"], metadata)
    load_training_states(checkpoint, path, optimizer, scheduler)
    if model is not None:
        model.load_state_dict(checkpoint["model_state"])
    return metadata


def _build(arch: str, num_classes: int, config: Mapping[str, Any]) -> nn.Module:
    """A model of ``arch`` with a ``num_classes`` head and ``config``'s settings, randomly initialised."""
    if arch == "scratch_cnn":
        settings = dict(config)
        if "channels" in settings:
            settings["channels"] = tuple(settings["channels"])
        return ScratchCNN(num_classes, **settings)
    model, _ = load_backbone(arch, weights=None)
    return replace_head(model, num_classes, hidden_units=tuple(config.get("hidden_units", ())),
                        dropout=config.get("dropout", 0.0))


def build_model_from_checkpoint(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored in a checkpoint from its metadata and load its weights.

    ``"scratch_cnn"`` becomes a :class:`course_utils.models.ScratchCNN` with the stored settings; a backbone
    name becomes ``load_backbone(arch, weights=None)`` with ``replace_head(...)`` for the stored class count
    and head settings. Returns ``(model, metadata)`` with the model in eval mode on the CPU.

    Nothing is built before the metadata is checked (:func:`check_metadata`, :func:`check_model_config`, an
    input size in the course's range) and a shapes-only outline of the model (PyTorch's ``meta`` device: no
    memory) fits the stored weights, so a crafted file cannot make it allocate more than the weights it holds.
    """
    path = Path(path)
    checkpoint = _read_and_check(path, rebuildable=True)
    metadata = checkpoint["metadata"]
    arch, num_classes = metadata["arch"], metadata["num_classes"]
    config = dict(metadata.get("model_config") or {})
    with torch.device("meta"):
        outline = _build(arch, num_classes, config).state_dict()
    state = checkpoint["model_state"]
    differing = sorted(set(outline) ^ set(state)) or [
        f"{key} {tuple(state[key].shape)} in the file, {tuple(outline[key].shape)} in the model"
        for key in outline if tuple(state[key].shape) != tuple(outline[key].shape)]
    if differing:
        raise CheckpointError(
            f"{path}: its metadata does not fit its weights: a '{arch}' model with {num_classes} classes and "
            f"model_config {config} has other layers or shapes ({'; '.join(map(str, differing[:3]))}); the file "
            "is damaged or was edited: save the model again with save_checkpoint."
        )
    model = _build(arch, num_classes, config)
    model.load_state_dict(state)
    model.eval()
    return model, metadata
