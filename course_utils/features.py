"""Feature extraction done right: run a frozen backbone once, cache its features, train only the head.

With a frozen backbone every epoch would push the same images through the same (unchanging) network
again. Computing the features once per split and training the head on them gives the same result many
times faster (see ``benchmarks/bench_feature_cache.py``).

**The trade-off: augmentation cannot apply to cached features.** Each image is seen through one fixed
(eval) transform when its features are computed, so random crops, rotations or colour jitter would be
frozen into the cache, the same "augmented" version every epoch. You choose:

- caching (fast): :func:`compute_features` once, then :func:`train_head_on_features`;
- augmentation (slower): the full model with a frozen body in :func:`course_utils.training.fit`, which
  runs the backbone on freshly augmented images every epoch.

Cache keys (:func:`feature_cache_key`) combine the backbone name, its weights, the list of sample paths
and labels, and the transform's ``repr``: change any of them and the features are computed again.

**A cache never hands back rows that belong to other images.** Row ``i`` of the features must belong to
image ``i`` of the loader, so only a loader that reads its images in order (``shuffle=False``, see
:func:`course_utils.loaders.in_sample_order`) uses the cache. A shuffling loader's features are computed and
returned but neither stored nor read from the cache, and one line says so: stored under the key of the
samples in order, its rows would be served later to the right answer, which would then fail for good.
Every cache entry (in memory and on disk) also records which images the loader read, in which order, with
which labels (their paths and labels, or the tensors of a ``TensorDataset``); a loader over other images or
another order is never served it, whatever key it brings.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import messages
from course_utils.checkpoints import weights_checksum
from course_utils.devices import batch_to_device, evaluating, model_device, prepare_model, run_autocast
from course_utils.files import atomic_write, display_path
from course_utils.loaders import batches_with_progress, in_sample_order, make_loader
from course_utils.training import fit

__all__ = ["clear_feature_cache", "compute_features", "feature_cache_key", "feature_loader", "features_of_images",
           "train_head_on_features"]

#: Features computed in this Python session, by cache key: ``(contents, features, labels)`` where contents
#: names the images the loader read, in order (see :func:`_loader_contents` and :func:`clear_feature_cache`).
_MEMORY_CACHE: dict[str, tuple[str | None, torch.Tensor, torch.Tensor]] = {}


def clear_feature_cache() -> None:
    """Forget the features kept in memory (files in a ``cache_dir`` stay)."""
    _MEMORY_CACHE.clear()


def feature_cache_key(arch: str, weights: Any, samples: Sequence[Any], transform: Any) -> str:
    """A short name that changes whenever the features would: ``"<arch>-<16 hex digits>"``.

    ``weights`` names the backbone's weights (e.g. ``BackboneInfo.weights``); ``samples`` are
    :class:`~course_utils.samples.Sample` s or ``(path, label)`` pairs, in loader order; the transform
    enters through its ``repr`` (which lists its steps and their settings). :func:`compute_features` also
    checks that the loader reads these very images in this order before it uses the cache.
    """
    description = {
        "arch": arch,
        "weights": str(weights),
        "samples": [[str(sample[0]), int(sample[1])] for sample in samples],
        "transform": repr(transform),
    }
    digest = hashlib.sha256(json.dumps(description, sort_keys=True).encode("utf-8")).hexdigest()
    return f"{arch}-{digest[:16]}"


def _cache_file(cache_dir: str | os.PathLike[str], cache_key: str) -> Path:
    return Path(cache_dir) / f"features-{cache_key}.pt"


def compute_features(
    backbone: nn.Module,
    loader: Iterable,
    device: torch.device | str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    cache_key: str | None = None,
    verbose: bool = True,
    channels_last: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``backbone`` (in eval mode, no gradients) over ``loader``; return ``(features, labels)``.

    ``backbone`` outputs features, not class scores: use
    :func:`course_utils.models.feature_extractor`. Results are float32 CPU tensors, one row per image, in
    loader order (use a loader with ``shuffle=False``). With ``cache_key`` (see :func:`feature_cache_key`)
    they are kept in memory for this session, and with ``cache_dir`` also on disk, so that a second call
    (or a re-run notebook) returns at once. Only a loader that reads its images in order uses the cache, and
    only features of the same images in the same order are served (see the module's docstring). The
    backbone and the batches go channels-last where that is faster (``channels_last=None`` follows
    :data:`course_utils.devices.CHANNELS_LAST`); the features agree with the contiguous format up to float
    rounding, so the cache key does not depend on it.
    """
    if cache_dir is not None and cache_key is None:
        raise ValueError("cache_dir needs a cache_key: build one with feature_cache_key(arch, weights, "
                         "samples, transform).")
    if cache_key is not None and not in_sample_order(loader):
        messages.warn("⚠️ These features are not cached: the loader does not read its images in order (shuffle=True or "
                      "a sampler), so row i would not belong to image i. Build it with shuffle=False.")
        cache_key = cache_dir = None
    contents = _loader_contents(loader) if cache_key is not None else None
    if cache_key is not None and cache_key in _MEMORY_CACHE:
        stored_contents, stored_features, stored_labels = _MEMORY_CACHE.pop(cache_key)
        if stored_contents == contents:
            _MEMORY_CACHE[cache_key] = stored_contents, stored_features, stored_labels
            return stored_features, stored_labels
        messages.warn(
            f"⚠️ Recomputing the features: those kept under {cache_key!r} belong to other images, or to another "
            "order, than this loader's.")
    elif cache_dir is not None and _cache_file(cache_dir, cache_key).is_file():
        stored = _read_cache(_cache_file(cache_dir, cache_key), cache_key, _rows_of(loader), contents)
        if stored is not None:
            _MEMORY_CACHE[cache_key] = (contents, *stored)
            if verbose:
                messages.say(f"Features loaded from the cache: {display_path(_cache_file(cache_dir, cache_key))}")
            return stored

    device = torch.device(device) if device is not None else model_device(backbone)
    prepare_model(backbone, device, channels_last)
    chunks, label_chunks = [], []
    with evaluating(backbone):
        for images, labels in batches_with_progress(loader, description="features", show=verbose):
            with run_autocast(device):
                chunks.append(backbone(batch_to_device(images, device, channels_last)).flatten(1).float().cpu())
            label_chunks.append(labels.cpu())
    if not chunks:
        raise ValueError("The loader yielded no batches: is the split empty?")
    features, labels = torch.cat(chunks), torch.cat(label_chunks).long()
    if cache_key is not None:
        _MEMORY_CACHE[cache_key] = contents, features, labels
    if cache_dir is not None:
        with atomic_write(_cache_file(cache_dir, cache_key)) as temporary:
            torch.save({"features": features, "labels": labels, "key": cache_key, "shape": list(features.shape),
                        "sha256": _cache_checksum(features, labels), "contents": contents}, temporary)
    return features, labels


def features_of_images(
    extractor: nn.Module,
    samples: Sequence[Any],
    transform: Any,
    info: Any,
    *,
    batch_size: int = 64,
    cache_dir: str | os.PathLike[str] | None = None,
    num_workers: int | None = None,
    verbose: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``extractor``'s features of ``samples`` seen through ``transform``; return ``(features, labels)``.

    The three steps a lesson would otherwise write each time: a loader that keeps the samples' order
    (``shuffle=False``), a cache key from the backbone ``info`` (its ``name`` and ``weights``, a
    :class:`~course_utils.backbones.BackboneInfo`), the samples and the transform (:func:`feature_cache_key`),
    then :func:`compute_features` on ``extractor``'s device. The same call again returns at once from the cache
    (in memory, and on disk in ``cache_dir``). Use the evaluation transform: see the module's docstring.
    """
    device = model_device(extractor)
    loader = make_loader(samples, transform, batch_size=batch_size, shuffle=False, device=device,
                         num_workers=num_workers)
    key = feature_cache_key(info.name, info.weights, samples, transform)
    return compute_features(extractor, loader, device=device, cache_dir=cache_dir, cache_key=key, verbose=verbose)


def _loader_contents(loader: Iterable) -> str | None:
    """A SHA-256 naming what ``loader`` reads, in order: its samples' paths and labels (an
    :class:`~course_utils.loaders.ImageDataset`) or its tensors (a ``TensorDataset``); ``None`` for other data
    sets, whose cache entries then rest on the cache key alone."""
    dataset = getattr(loader, "dataset", None)
    if isinstance(dataset, TensorDataset):
        return weights_checksum({str(number): tensor for number, tensor in enumerate(dataset.tensors)})
    samples = getattr(dataset, "samples", None)
    if not isinstance(samples, Sequence):
        return None
    try:
        rows = [[str(sample[0]), int(sample[1])] for sample in samples]
    except (TypeError, ValueError, IndexError):
        return None
    return hashlib.sha256(json.dumps(rows).encode("utf-8")).hexdigest()


def _rows_of(loader: Iterable) -> int | None:
    """How many images ``loader`` yields, when its data set can say."""
    try:
        return len(loader.dataset)  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        return None


def _cache_checksum(features: torch.Tensor, labels: torch.Tensor) -> str:
    """SHA-256 over the features and labels (names, dtypes, shapes, bytes), stored with them in the cache file."""
    return weights_checksum({"features": features, "labels": labels})


def _read_cache(path: Path, cache_key: str, rows: int | None,
                contents: str | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The ``(features, labels)`` of a cache file, or ``None`` (with one line saying why) when it cannot serve.

    The file must load, hold the same key (a copied or renamed file may not), a shape that matches its
    tensors and the number of images to compute, features and labels that match the checksum stored with
    them (flipped bytes keep a file's size) and, when ``contents`` is given (see :func:`_loader_contents`),
    the features of those very images in that order; otherwise the features are computed again.
    """
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        features, labels = stored["features"], stored["labels"]
        problem = None
        if stored.get("key") != cache_key:
            problem = f"it holds the features of {stored.get('key')!r}, not {cache_key!r}"
        elif stored.get("shape") is not None and list(features.shape) != list(stored["shape"]):
            problem = f"its features have shape {list(features.shape)}, not the stored {stored['shape']}"
        elif features.ndim != 2 or len(features) != len(labels):
            problem = f"{len(features)} feature rows but {len(labels)} labels"
        elif rows is not None and len(features) != rows:
            problem = f"it has {len(features)} rows for {rows} images"
        elif stored.get("sha256") is None:
            problem = "it has no checksum: an older course version wrote it"
        elif stored["sha256"] != _cache_checksum(features, labels):
            problem = "its features or labels differ from the checksum stored with them: changed bytes"
        elif contents is not None and stored.get("contents") is None:
            problem = "it does not record which images it holds, in which order: an older course version wrote it"
        elif contents is not None and stored["contents"] != contents:
            problem = "it holds the features of other images, or of another order, than this loader's"
    except Exception as error:  # noqa: BLE001 - an unreadable cache file is simply recomputed
        problem = f"unreadable: {type(error).__name__}: {(str(error).splitlines() or [''])[0][:120]}"
    if problem is None:
        return features, labels
    messages.warn(f"⚠️ Recomputing the features: the cache file {display_path(path)} does not match ({problem}).")
    return None


def feature_loader(features: torch.Tensor, labels: torch.Tensor, batch_size: int = 256,
                   shuffle: bool = False, generator: torch.Generator | None = None) -> DataLoader:
    """A DataLoader over cached features (no worker processes needed: the data are already tensors).

    ``generator`` (a seeded ``torch.Generator``) fixes the shuffling order; without shuffling the loader draws
    nothing from torch's global generator, so evaluating again does not change what later cells draw.
    """
    if len(features) != len(labels):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels.")
    if generator is None and not shuffle:
        generator = torch.Generator().manual_seed(0)  # DataLoader draws a (here unused) worker seed from it
    return DataLoader(TensorDataset(features, labels), batch_size=batch_size, shuffle=shuffle,
                      generator=generator)


def train_head_on_features(
    head: nn.Module,
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module | None = None,
    scheduler: Any | None = None,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    early_stopping_patience: int | None = None,
    generator: torch.Generator | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    resume: bool = False,
    verbose: bool = True,
) -> pd.DataFrame:
    """Train ``head`` (for example a ``Linear(feature_dim, num_classes)``) on cached features with ``fit``.

    Returns ``fit``'s history; the head ends with its best weights. Put it back on the backbone
    afterwards, e.g. ``model.fc = head`` for a ResNet (see :func:`course_utils.models.find_head`).
    ``generator`` (a seeded ``torch.Generator``) fixes the shuffling order.
    """
    train_loader = feature_loader(train_features, train_labels, batch_size, shuffle=True, generator=generator)
    val_loader = feature_loader(val_features, val_labels, batch_size)
    return fit(head, train_loader, val_loader, epochs=epochs, optimizer=optimizer, loss_fn=loss_fn,
               scheduler=scheduler, device=device, early_stopping_patience=early_stopping_patience,
               checkpoint_path=checkpoint_path, resume=resume, verbose=verbose)
