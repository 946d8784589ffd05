"""Where and how a model runs: the device its weights live on, its memory format, and evaluation mode.

    with evaluating(model):          # eval mode, no gradients; the previous mode comes back afterwards,
        logits = model(images)       # even when the cell is interrupted with Ctrl+C or raises

**Memory format (channels-last).** A batch of images is a 4-D tensor ``(batch, channels, height, width)``.
PyTorch stores it by default "contiguous" (all of channel 0, then all of channel 1, ...); *channels-last*
stores the channels of each pixel side by side instead. The shape and the numbers do not change, only their
order in memory, and convolutions on both the CPU (oneDNN) and CUDA (cuDNN) run considerably faster in
channels-last. :func:`prepare_model` puts a model's weights and :func:`batch_to_device` puts each image batch
channels-last; :func:`course_utils.training.fit`, :func:`course_utils.features.compute_features` and
:func:`course_utils.evaluation.predict` use both.

Why it is on by default on the CPU too: on an idle 2-core CPU it was faster, forward and in training, for
every model the course uses (``benchmarks/bench_memory_format.py``; the figures are in ``benchmarks/README.md``).
The one case measured slower was the forward pass on a machine running far more threads than it had cores;
that is not a student's laptop, and the switch below is there for it.

It is a speed setting only: results agree with the contiguous format up to float rounding, and checkpoints
do not depend on it (a state dict saved from a channels-last model loads into a contiguous one and back).
Switch it off to compare, or if some unusual layer were slower in channels-last:

- for a whole run: the environment variable ``COURSE_CHANNELS_LAST=0`` (read at import);
- in a running notebook: ``course_utils.devices.CHANNELS_LAST = False``;
- for one call: ``fit(..., channels_last=False)`` (likewise ``compute_features`` and ``predict``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = [
    "CHANNELS_LAST",
    "batch_to_device",
    "evaluating",
    "model_device",
    "prepare_model",
    "run_autocast",
    "uses_channels_last",
]


def _channels_last_from_environment() -> bool:
    value = os.environ.get("COURSE_CHANNELS_LAST", "1").strip().lower()
    if value in ("1", "true", "yes", "on", ""):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"COURSE_CHANNELS_LAST={value!r} is not understood: use 1 (on, the default) or 0 (off).")


#: Whether models and image batches go channels-last (on the CPU and on CUDA; other devices stay contiguous).
#: Defaults to on; the environment variable ``COURSE_CHANNELS_LAST=0`` or setting this to ``False`` turns it off.
CHANNELS_LAST: bool = _channels_last_from_environment()

#: Device types where channels-last is used when :data:`CHANNELS_LAST` is on (measured faster there).
_CHANNELS_LAST_DEVICES = ("cpu", "cuda")


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a model without either."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block with ``model`` in eval mode and without gradients, then restore its previous mode.

    Eval mode makes dropout do nothing and batch norm use its stored statistics: what you want whenever you
    measure or predict. The previous mode (train or eval) is restored in a ``finally``, so an exception or a
    Ctrl+C inside the block never leaves a training model stuck in eval mode.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def uses_channels_last(device: torch.device | str, channels_last: bool | None = None) -> bool:
    """Whether image batches and models go channels-last on ``device``.

    ``channels_last=None`` follows :data:`CHANNELS_LAST` (on by default) for the CPU and CUDA;
    ``True``/``False`` decides for this call (``True`` still leaves other device types contiguous).
    """
    wanted = CHANNELS_LAST if channels_last is None else channels_last
    return bool(wanted) and torch.device(device).type in _CHANNELS_LAST_DEVICES


def prepare_model(model: nn.Module, device: torch.device | str, channels_last: bool | None = None) -> nn.Module:
    """Move ``model`` to ``device`` in the memory format chosen there (see the module docstring); return it.

    With channels-last off the model is put back to the contiguous format, so that a model prepared once
    with it on does not keep the other format.
    """
    device = torch.device(device)
    model.to(device)
    fmt = torch.channels_last if uses_channels_last(device, channels_last) else torch.contiguous_format
    model.to(memory_format=fmt)
    return model


def batch_to_device(batch: torch.Tensor, device: torch.device | str,
                    channels_last: bool | None = None) -> torch.Tensor:
    """Move a batch to ``device``; a batch of images (4 dimensions) also takes the model's memory format."""
    device = torch.device(device)
    batch = batch.to(device, non_blocking=True)
    if batch.dim() == 4 and uses_channels_last(device, channels_last):
        batch = batch.contiguous(memory_format=torch.channels_last)
    return batch


def run_autocast(device: torch.device | str, enabled: bool = True):
    """Mixed precision where it pays: float16 autocast on CUDA when ``enabled``, a no-op elsewhere."""
    device = torch.device(device)
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=enabled and device.type == "cuda")
