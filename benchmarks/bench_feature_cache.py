"""Cached features vs a frozen backbone run every epoch (a benchmark, not a test).

Trains the same linear head for 10 epochs on the same 512 training and 128 validation images two ways:

1. *cached*: run the frozen backbone once per split (``compute_features``), then train the head on the
   stored features (``train_head_on_features``);
2. *per epoch*: train the whole model with its body frozen (``fit``), which pushes every image through
   the backbone again in every epoch, as the source tutorials did.

Both start from the same head weights and shuffle in the same order, so they must end with the same
history up to float noise (asserted). Prints both times and their ratio. The images are synthetic
tensors already in memory (96x96), so the figure leaves out image decoding and resizing, which would
make the per-epoch way slower still: the ratio is a lower bound.

Backbone: the packaged ImageNet EfficientNet-Lite0 (``load_backbone("efficientnet_lite0")``), or a
randomly initialised ResNet-18 where that is not available (weights do not change the timing).

    .venv/bin/python benchmarks/bench_feature_cache.py [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils.backbones import load_backbone
from course_utils.features import compute_features, train_head_on_features
from course_utils.models import feature_extractor, find_head, freeze_backbone, replace_head
from course_utils.training import fit

EPOCHS, TRAIN_IMAGES, VAL_IMAGES, IMAGE_SIZE, CLASSES, BATCH_SIZE = 10, 512, 128, 96, 4, 64


def synthetic_images(count: int, seed: int) -> TensorDataset:
    """Noise images with a class-dependent colour tint, normalised around 0 (learnable, not trivial)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % CLASSES
    tints = torch.tensor([[0.4, 0.0, 0.0], [0.0, 0.4, 0.0], [0.0, 0.0, 0.4], [0.3, 0.3, 0.0]])
    images = torch.rand(count, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator) - 0.5
    images += tints[labels][:, :, None, None]
    return TensorDataset(images, labels)


def backbone_model() -> tuple[nn.Module, str]:
    try:
        model, info = load_backbone("efficientnet_lite0")
        name = f"efficientnet_lite0 ({info.weights})"
    except Exception as error:  # noqa: BLE001 - any failure means: use the fallback
        print(f"efficientnet_lite0 unavailable ({error}); using a random ResNet-18.")
        model, _ = load_backbone("resnet18", weights=None)
        name = "resnet18 (random weights)"
    torch.manual_seed(0)
    return freeze_backbone(replace_head(model, CLASSES)), name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 is steadier on a busy machine)")
    if (threads := parser.parse_args().threads) is not None:
        torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]  # other busy processes slow both ways down
    train, val = synthetic_images(TRAIN_IMAGES, 1), synthetic_images(VAL_IMAGES, 2)
    model, name = backbone_model()
    head = copy.deepcopy(find_head(model)[1])  # the same starting weights for both ways

    start = time.perf_counter()
    backbone = feature_extractor(model)
    train_features, train_labels = compute_features(backbone, DataLoader(train, batch_size=BATCH_SIZE),
                                                    verbose=False)
    val_features, val_labels = compute_features(backbone, DataLoader(val, batch_size=BATCH_SIZE),
                                                verbose=False)
    features_seconds = time.perf_counter() - start
    cached = train_head_on_features(
        head, train_features, train_labels, val_features, val_labels, epochs=EPOCHS, batch_size=BATCH_SIZE,
        optimizer=torch.optim.SGD(head.parameters(), lr=0.05, momentum=0.9),
        generator=torch.Generator().manual_seed(0), verbose=False)
    cached_seconds = time.perf_counter() - start

    start = time.perf_counter()
    train_loader = DataLoader(train, batch_size=BATCH_SIZE, shuffle=True,
                              generator=torch.Generator().manual_seed(0))
    trainable = [p for p in model.parameters() if p.requires_grad]
    per_epoch = fit(model, train_loader, DataLoader(val, batch_size=BATCH_SIZE), epochs=EPOCHS,
                    optimizer=torch.optim.SGD(trainable, lr=0.05, momentum=0.9), verbose=False)
    per_epoch_seconds = time.perf_counter() - start

    columns = ["train_loss", "train_accuracy", "val_loss", "val_accuracy"]
    difference = (cached[columns] - per_epoch[columns]).abs().max()
    print(f"backbone: {name}; {TRAIN_IMAGES} + {VAL_IMAGES} images of {IMAGE_SIZE}x{IMAGE_SIZE}, "
          f"{EPOCHS} epochs, batch {BATCH_SIZE}, {torch.get_num_threads()} torch threads, "
          f"{os.cpu_count()} CPU cores, load average before {load_before:.1f}")
    print(f"cached features: {cached_seconds:6.2f} s "
          f"(of which computing the features {features_seconds:.2f} s)")
    print(f"backbone every epoch: {per_epoch_seconds:6.2f} s")
    print(f"ratio: cached is {per_epoch_seconds / cached_seconds:.1f}x faster")
    print(f"final val accuracy: cached {cached['val_accuracy'].iloc[-1]:.3f}, "
          f"per epoch {per_epoch['val_accuracy'].iloc[-1]:.3f}; largest history difference: "
          + ", ".join(f"{column} {value:.1e}" for column, value in difference.items()))
    assert difference[["train_loss", "val_loss"]].max() < 1e-3, "the two ways should give the same losses"
    assert difference[["train_accuracy", "val_accuracy"]].max() <= 2 / VAL_IMAGES, "and the same accuracies"


if __name__ == "__main__":
    main()
