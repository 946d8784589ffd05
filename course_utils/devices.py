"""Where and how a model runs: the device its weights live on, and evaluation mode that is always undone.

    with evaluating(model):          # eval mode, no gradients; the previous mode comes back afterwards,
        logits = model(images)       # even when the cell is interrupted with Ctrl+C or raises
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["batch_to_device", "evaluating", "model_device", "prepare_model", "run_autocast", "uses_channels_last"]


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


def uses_channels_last(device: torch.device) -> bool:
    """Whether image batches and models go channels-last on ``device`` (CUDA: faster convolutions)."""
    return torch.device(device).type == "cuda"


def prepare_model(model: nn.Module, device: torch.device | str) -> nn.Module:
    """Move ``model`` to ``device`` in the memory format that is fastest there; return it."""
    device = torch.device(device)
    model.to(device)
    if uses_channels_last(device):
        model.to(memory_format=torch.channels_last)
    return model


def batch_to_device(batch: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """Move a batch to ``device``; a batch of images (4 dimensions) also takes the model's memory format."""
    device = torch.device(device)
    batch = batch.to(device, non_blocking=True)
    if batch.dim() == 4 and uses_channels_last(device):
        batch = batch.contiguous(memory_format=torch.channels_last)
    return batch


def run_autocast(device: torch.device | str, enabled: bool = True):
    """Mixed precision where it pays: float16 autocast on CUDA when ``enabled``, a no-op elsewhere."""
    device = torch.device(device)
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=enabled and device.type == "cuda")
