"""Save and load model checkpoints safely: state dicts plus metadata, never pickled model objects.

A checkpoint is a plain dictionary written with ``torch.save``::

    {"format": "course_utils.checkpoint", "version": 1,
     "model_state": <state dict>, "metadata": {...}, "weights_sha256": <hex>,
     "optimizer_state": <optional>, "scheduler_state": <optional>}

It holds only tensors, numbers, strings, lists, tuples and dictionaries, so it loads with
``torch.load(path, weights_only=True)``: loading it can never run code hidden in the file. The metadata
(architecture name, class names, normalisation, input size, head configuration) is enough to rebuild the
model with :func:`build_model_from_checkpoint`, without the code that trained it.

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
from course_utils.files import atomic_write
from course_utils.models import ScratchCNN, find_head, replace_head

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "READABLE_VERSIONS", "CheckpointError",
           "CheckpointMismatchError", "build_model_from_checkpoint", "check_compatible", "describe_model",
           "library_versions", "load_checkpoint", "read_checkpoint", "save_checkpoint", "weights_checksum"]

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
    if scheduler is not None:
        checkpoint["scheduler_state"] = scheduler.state_dict()
    with atomic_write(path) as temporary:
        torch.save(checkpoint, temporary)
    return Path(path)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint file safely (``weights_only=True``), check it and return the raw dictionary.

    Raises :class:`CheckpointError` naming the file for a file holding pickled Python objects (for example a
    whole model saved with ``torch.save(model)``, which could run code when loaded), a damaged or truncated
    file, a file of another kind, one without weights or metadata, a format version this code does not
    know, and weights whose checksum differs from the one stored at save time.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}.")
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
    stored = checkpoint.get("weights_sha256")
    if stored is not None and stored != weights_checksum(checkpoint["model_state"]):
        raise CheckpointError(
            f"{path} is damaged: its weights do not match the checksum stored when it was saved "
            "(changed bytes); save it again, or copy it again from where it came from."
        )
    return checkpoint


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
            f"({', '.join(metadata.get('classes') or [])}), the model has {model_classes}. "
            f"Give the model a {num_classes}-class head (replace_head(model, {num_classes}, ...)), {rebuild}"
        )
    details = ", ".join(
        f"{k}: {tuple(state[k].shape)} vs {tuple(model_state[k].shape)}" for k in wrong_shapes[:3]
    )
    raise CheckpointMismatchError(
        f"Architecture mismatch: {len(wrong_shapes)} tensors have other shapes in the checkpoint ('{arch}') "
        f"than in this model (checkpoint vs model: {details}). Create a '{arch}' model, {rebuild}"
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
    get their stored states when given (to resume training).
    """
    checkpoint = read_checkpoint(path)
    metadata = checkpoint["metadata"]
    if model is not None:
        check_compatible(model, checkpoint["model_state"], metadata)
        model.load_state_dict(checkpoint["model_state"])
    for name, target in (("optimizer", optimizer), ("scheduler", scheduler)):
        if target is None:
            continue
        if f"{name}_state" not in checkpoint:
            raise CheckpointError(
                f"{path} holds no {name} state; save it with save_checkpoint(..., {name}=...)."
            )
        target.load_state_dict(checkpoint[f"{name}_state"])
    return metadata


def build_model_from_checkpoint(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored in a checkpoint from its metadata and load its weights.

    ``"scratch_cnn"`` becomes a :class:`course_utils.models.ScratchCNN` with the stored settings; a backbone
    name becomes ``load_backbone(arch, weights=None)`` with ``replace_head(...)`` for the stored class count
    and head settings. Returns ``(model, metadata)`` with the model in eval mode on the CPU.
    """
    checkpoint = read_checkpoint(path)
    metadata = checkpoint["metadata"]
    arch, num_classes = metadata.get("arch"), metadata.get("num_classes")
    if not arch or not num_classes:
        raise CheckpointError(
            f"{path} does not say which architecture or how many classes it holds; "
            "save it with save_checkpoint(..., arch=..., classes=...) to make it rebuildable."
        )
    config = dict(metadata.get("model_config") or {})
    if arch == "scratch_cnn":
        if "channels" in config:
            config["channels"] = tuple(config["channels"])
        model = ScratchCNN(num_classes, **config)
    else:
        model, _ = load_backbone(arch, weights=None)
        model = replace_head(
            model,
            num_classes,
            hidden_units=tuple(config.get("hidden_units", ())),
            dropout=config.get("dropout", 0.0),
        )
    check_compatible(model, checkpoint["model_state"], metadata)
    model.load_state_dict(checkpoint["model_state"])
    model.eval()
    return model, metadata
