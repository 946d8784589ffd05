"""Image pipelines (``torchvision.transforms.v2``), a Dataset over samples, and data loaders.

A pretrained backbone expects images prepared the way its ImageNet training images were: the same
normalisation (mean and standard deviation per colour channel) and roughly the same size. So both
pipelines take the backbone's own numbers::

    model, info = load_backbone("resnet18")
    train_tf = train_transform(info, image_size=224)
    eval_tf = eval_transform(info, image_size=224)

No horizontal flip: a mirrored "turn left ahead" sign *is* a "turn right ahead" sign, and mirrored digits
on a speed-limit sign are not digits any more. Flipping would teach the model wrong labels.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from course_utils.datasets import Sample, load_rgb


def _mean_std(info: Any, mean: Sequence[float] | None, std: Sequence[float] | None):
    """Mean and std from a BackboneInfo-like object (anything with ``.mean`` and ``.std``) or given."""
    if info is not None:
        mean = info.mean if mean is None else mean
        std = info.std if std is None else std
    if mean is None or std is None:
        raise ValueError("Pass the backbone's info (from load_backbone) or both mean= and std=.")
    return [float(value) for value in mean], [float(value) for value in std]


def _image_size(info: Any, image_size: int | None) -> int:
    if image_size is None:
        image_size = getattr(info, "input_size", None)
    if image_size is None:
        raise ValueError("Pass image_size= (the side of the square images the model sees).")
    return int(image_size)


def eval_transform(info: Any = None, image_size: int | None = None, *, mean: Sequence[float] | None = None,
                   std: Sequence[float] | None = None) -> v2.Compose:
    """Validation/test pipeline: resize to a square ``image_size``, make a float tensor, normalise.

    ``info`` is the backbone's :class:`~course_utils.models.BackboneInfo` (its mean, std and, when
    ``image_size`` is not given, its input size); or pass ``mean=`` and ``std=`` yourself.
    """
    mean, std = _mean_std(info, mean, std)
    size = _image_size(info, image_size)
    return v2.Compose([
        v2.ToImage(),
        v2.Resize((size, size), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ])


def train_transform(info: Any = None, image_size: int | None = None, *, mean: Sequence[float] | None = None,
                    std: Sequence[float] | None = None, rotation_degrees: float = 10.0) -> v2.Compose:
    """Training pipeline: :func:`eval_transform` plus augmentation, a new random variant every epoch.

    Random crop of 70-100% of the image (signs are seen at varying distances), a small rotation (a sign is
    rarely photographed perfectly upright) and colour jitter (sun, shade, dusk). No horizontal flip: it
    swaps "turn left" and "turn right" and mirrors digits, so it would teach wrong labels.
    """
    mean, std = _mean_std(info, mean, std)
    size = _image_size(info, image_size)
    return v2.Compose([
        v2.ToImage(),
        v2.RandomResizedCrop((size, size), scale=(0.7, 1.0), ratio=(0.8, 1.25), antialias=True),
        v2.RandomRotation(rotation_degrees),
        v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.02),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ])


def denormalize(batch: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo :class:`v2.Normalize` so images can be shown: values back in 0..1 (one image or a batch)."""
    shape = (-1, 1, 1)
    mean_tensor = torch.as_tensor(mean, dtype=batch.dtype, device=batch.device).reshape(shape)
    std_tensor = torch.as_tensor(std, dtype=batch.dtype, device=batch.device).reshape(shape)
    return (batch * std_tensor + mean_tensor).clamp(0.0, 1.0)


class ImageDataset(Dataset):
    """A PyTorch Dataset over samples: item ``i`` is ``(transform(image), label)``.

    Images are opened with :func:`~course_utils.datasets.load_rgb`, so every file arrives as RGB whatever
    its mode. Without a transform the PIL image itself is returned.
    """

    def __init__(self, samples: Sequence[Sample], transform: Callable | None = None) -> None:
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        sample = self.samples[index]
        image = load_rgb(sample.path)
        if self.transform is not None:
            image = self.transform(image)
        return image, sample.label


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))  # the cores this process may use (containers, Colab)
    return os.cpu_count() or 1


def default_num_workers() -> int:
    """How many background processes load images: 0 on Windows and macOS, else up to 4 (one core spared).

    On Windows and macOS worker processes are *spawned*: each re-imports the notebook's code, which fails
    for classes defined in a notebook and makes every epoch start slowly. Loading in the main process
    (0 workers) always works there. Linux *forks* workers cheaply, so they pay off.
    """
    if platform.system() in ("Windows", "Darwin"):
        return 0
    return max(0, min(4, _cpu_count() - 1))


def make_loader(samples: Sequence[Sample], transform: Callable, *, batch_size: int, shuffle: bool,
                num_workers: int | None = None, device: str | torch.device | None = None,
                seed: int | None = None) -> DataLoader:
    """A DataLoader of ``(images, labels)`` batches over ``samples``.

    ``num_workers`` defaults to :func:`default_num_workers`; workers stay alive between epochs. Pass the
    training ``device`` so batches are put in pinned memory for a faster copy to a CUDA GPU. ``seed``
    makes the shuffling order reproducible on its own (otherwise it follows torch's global seed).
    """
    if num_workers is None:
        num_workers = default_num_workers()
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    on_cuda = device is not None and torch.device(device).type == "cuda"
    return DataLoader(ImageDataset(samples, transform), batch_size=batch_size, shuffle=shuffle,
                      num_workers=num_workers, pin_memory=on_cuda, persistent_workers=num_workers > 0,
                      generator=generator)
