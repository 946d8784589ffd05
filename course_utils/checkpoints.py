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
metadata's types and ranges are checked before any model is built (:func:`check_metadata`, in
:mod:`course_utils.checkpoint_checks` with the other checks), two SHA-256
checksums cover the weights and everything else (metadata, training state, optimizer and scheduler states),
and weights that are not finite numbers (a diverged run) are refused.

Writes are atomic (a temporary file in the same folder, then ``os.replace``): a run killed mid-save
leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
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

from course_utils.backbones import load_backbone
from course_utils.checkpoint_checks import (
    MODEL_CONFIG_KEYS,
    CheckpointError,
    CheckpointMismatchError,
    _check_rebuildable,
    _first_non_finite,
    _optimizer_state_problem,
    check_compatible,
    check_metadata,
    check_model_config,
    check_training_state,
)
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


#: The first bytes of the two kinds of torch file: a zip archive (since PyTorch 1.6) and the older pickle
#: format, which starts with torch's magic number pickled with protocol 2.
_TORCH_FILE_STARTS = (b"PK\x03\x04", b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19")


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
