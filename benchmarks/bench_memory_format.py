"""Contiguous (NCHW) vs channels-last (NHWC) memory format on this machine (a benchmark, not a test).

For each backbone the course uses (EfficientNet-Lite0 with its packaged weights; ResNet-18 and ResNet-50
with random weights, so nothing is downloaded and the timing is the same) and for the lessons' ScratchCNN,
measures images per second for

- a forward pass in eval mode without gradients at 96 px (what ``compute_features`` and ``predict`` do);
- a training step (forward, cross-entropy, backward, SGD step) at 64 px (what ``fit`` does).

The two formats alternate, round after round, in one process, and the table shows the median of the rounds,
so a busy machine slows both about equally. The last column is channels-last / contiguous.

    .venv/bin/python benchmarks/bench_memory_format.py [--rounds 5] [--batch 32] [--models resnet18,scratch]
                                                       [--threads 1] [--skip-training]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from course_utils.backbones import load_backbone
from course_utils.models import ScratchCNN, replace_head

FORWARD_SIZE, TRAIN_SIZE, CLASSES = 96, 64, 10
MODELS = ("efficientnet_lite0", "resnet18", "resnet50", "scratch")


def build(name: str) -> nn.Module:
    """A fresh model with a 10-class head (random head weights from a fixed seed)."""
    torch.manual_seed(0)
    if name == "scratch":
        return ScratchCNN(num_classes=CLASSES)
    weights = "default" if name == "efficientnet_lite0" else None
    model, _ = load_backbone(name, weights=weights, verbose=False)
    return replace_head(model, CLASSES)


def in_format(model: nn.Module, channels_last: bool) -> nn.Module:
    return model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def forward_rate(model: nn.Module, images: torch.Tensor, channels_last: bool, batches: int) -> float:
    """Images per second of ``batches`` forward passes (eval, no gradients) after one warm-up batch."""
    in_format(model, channels_last).eval()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    with torch.no_grad():
        model(images.contiguous(memory_format=fmt))
        started = time.perf_counter()
        for _ in range(batches):
            model(images.contiguous(memory_format=fmt))  # the conversion is part of the cost, as in the library
        return batches * len(images) / (time.perf_counter() - started)


def train_rate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, channels_last: bool,
               batches: int) -> float:
    """Images per second of ``batches`` SGD steps after one warm-up step."""
    in_format(model, channels_last).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(images.contiguous(memory_format=fmt)), labels).backward()
        optimizer.step()

    step()
    started = time.perf_counter()
    for _ in range(batches):
        step()
    return batches * len(images) / (time.perf_counter() - started)


def alternate(measure: Callable[[bool], float], rounds: int) -> tuple[float, float]:
    """Median images/s contiguous and channels-last, the two measured in turn ``rounds`` times."""
    plain, last = [], []
    for round_index in range(rounds):
        order = (False, True) if round_index % 2 == 0 else (True, False)  # neither always goes first
        for channels_last in order:
            (last if channels_last else plain).append(measure(channels_last))
    return statistics.median(plain), statistics.median(last)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=3, help="timed batches per measurement")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--skip-training", action="store_true", help="measure the forward pass only")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"median of {args.rounds} alternating rounds of {args.batches} batches")
    generator = torch.Generator().manual_seed(0)
    forward_images = torch.randn(args.batch, 3, FORWARD_SIZE, FORWARD_SIZE, generator=generator)
    train_images = torch.randn(args.batch, 3, TRAIN_SIZE, TRAIN_SIZE, generator=generator)
    labels = torch.randint(0, CLASSES, (args.batch,), generator=generator)
    print("| model | work | contiguous (images/s) | channels-last (images/s) | ratio |")
    print("|---|---|---|---|---|")
    for name in args.models.split(","):
        model = build(name)
        plain, last = alternate(lambda cl, model=model: forward_rate(model, forward_images, cl, args.batches),
                                args.rounds)
        print(f"| {name} | forward {FORWARD_SIZE} px | {plain:.0f} | {last:.0f} | {last / plain:.2f}x |", flush=True)
        if args.skip_training:
            continue
        plain, last = alternate(lambda cl, model=model: train_rate(model, train_images, labels, cl, args.batches),
                                args.rounds)
        print(f"| {name} | training step {TRAIN_SIZE} px | {plain:.0f} | {last:.0f} | {last / plain:.2f}x |",
              flush=True)


if __name__ == "__main__":
    main()
