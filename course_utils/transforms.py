"""Image pipelines (``torchvision.transforms.v2``): what a backbone expects, with and without augmentation.

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

from collections.abc import Sequence
from typing import Any

import torch
from torchvision.transforms import v2

__all__ = ["denormalize", "eval_transform", "train_transform"]


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
                   std: Sequence[float] | None = None, crop: bool = False) -> v2.Compose:
    """Validation/test pipeline: resize to a square ``image_size``, make a float tensor, normalise.

    ``info`` is the backbone's :class:`~course_utils.backbones.BackboneInfo` (its mean, std and, when
    ``image_size`` is not given, its input size); or pass ``mean=`` and ``std=`` yourself.

    The course's models are trained and evaluated on whole images squashed to a square (``crop=False``): a sign
    at the edge of a photo stays in the picture. ``crop=True`` is ImageNet's own validation recipe, for a
    photo shown to the untouched ImageNet head (:func:`course_utils.backbones.imagenet_top_k`): the short side
    resized to ``image_size / 0.875`` (256 for 224), then the centre ``image_size`` square cut out, so that the
    aspect ratio is kept.
    """
    mean, std = _mean_std(info, mean, std)
    size = _image_size(info, image_size)
    resize = [v2.Resize(round(size / 0.875), antialias=True), v2.CenterCrop(size)] if crop else \
        [v2.Resize((size, size), antialias=True)]
    return v2.Compose([
        v2.ToImage(),
        *resize,
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
