"""``training.fit`` vs a plain contiguous PyTorch loop doing the same fine-tuning (a benchmark, not a test).

The work is lesson 3's on the CPU: the packaged EfficientNet-Lite0 with a new 10-class head and its last two
body blocks unfrozen (head plus body), AdamW with one learning rate for the head and a smaller one for the
body, 64x64 images, batch 32, one epoch of training followed by one pass over the validation images.

- *fit*: ``training.fit(..., epochs=1, verbose=False)``, with the library's defaults: channels-last on the
  CPU (see :mod:`course_utils.devices`) and the optimizer's fused implementation, which ``fit`` picks when
  the caller left the choice to PyTorch (``training.use_fused_optimizer``);
- *fit contiguous*: the same with ``channels_last=False`` (the library's own cost and the fused optimizer,
  without the memory format's gain);
- *plain loop*: the textbook loop (``model.train()``, ``zero_grad``, forward, loss, ``backward``, ``step``,
  then evaluation under ``torch.no_grad()``) in PyTorch's default contiguous memory format, with the same
  AdamW run as PyTorch runs it by default on the CPU (a loop over the parameters).

Both start from copies of the same model, see the same batches in the same order, and must end with the same
losses up to float rounding (printed). The two alternate, round after round, in one process; the ratio is
plain-loop time / fit time, median over the rounds (above 1: fit is faster). The images are synthetic tensors
already in memory, so the figure is about the model's arithmetic, not image decoding. Single rounds on a
2-core machine swing by +-0.2 around the median, hence 15 rounds by default (about two minutes). The thread
wait policy changes the result: run it as the course runs, ``OMP_WAIT_POLICY=PASSIVE`` (``make benchmark``
and the lessons set it), or unset for OpenMP's default.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_fit_vs_loop.py [--rounds 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils.backbones import load_backbone
from course_utils.models import parameter_groups, replace_head, set_frozen_batchnorm_eval, unfreeze
from course_utils.training import fit

CLASSES, IMAGE_SIZE, BATCH_SIZE, TRAIN_IMAGES, VAL_IMAGES, LAST_BLOCKS = 10, 64, 32, 320, 96, 2


def tinted_noise(count: int, seed: int) -> TensorDataset:
    """Noise images with a class-dependent colour tint (learnable, so the losses move)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % CLASSES
    tints = torch.rand(CLASSES, 3, generator=generator) * 0.6
    images = torch.rand(count, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator) - 0.5
    return TensorDataset(images + tints[labels][:, :, None, None], labels)


def optimizer_for(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(parameter_groups(model, head_lr=1e-3, body_lr=1e-4), weight_decay=0.01)


def plain_loop(model: nn.Module, train: DataLoader, val: DataLoader) -> tuple[float, float]:
    """One epoch of the textbook loop plus validation; returns (mean train loss, mean val loss)."""
    optimizer = optimizer_for(model)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    set_frozen_batchnorm_eval(model)  # fit does this too: frozen BatchNorm layers keep their statistics
    train_loss = 0.0
    for images, labels in train:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        train_loss += loss.item() * len(labels)
    model.eval()
    val_loss = 0.0
    with torch.no_grad():
        for images, labels in val:
            val_loss += loss_fn(model(images), labels).item() * len(labels)
    return train_loss / len(train.dataset), val_loss / len(val.dataset)


def with_fit(model: nn.Module, train: DataLoader, val: DataLoader,
             channels_last: bool | None = None) -> tuple[float, float]:
    history = fit(model, train, val, epochs=1, optimizer=optimizer_for(model), verbose=False,
                  channels_last=channels_last)
    return float(history["train_loss"].iloc[0]), float(history["val_loss"].iloc[0])


def with_fit_contiguous(model: nn.Module, train: DataLoader, val: DataLoader) -> tuple[float, float]:
    """``fit`` with channels-last off: separates the library's own cost from the memory format's gain."""
    return with_fit(model, train, val, channels_last=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--last-blocks", default=str(LAST_BLOCKS),
                        help=f"blocks of the body that train besides the head, or 'all' (default: {LAST_BLOCKS})")
    args = parser.parse_args()
    last_blocks = None if args.last_blocks == "all" else int(args.last_blocks)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    backbone, info = load_backbone("efficientnet_lite0", verbose=False)
    start = unfreeze(replace_head(backbone, CLASSES), last_blocks=last_blocks)
    train_set, val_set = tinted_noise(TRAIN_IMAGES, 1), tinted_noise(VAL_IMAGES, 2)
    trained = "the whole body" if last_blocks is None else f"the last {last_blocks} blocks"
    print(f"EfficientNet-Lite0 ({info.weights}), head + {trained}, {IMAGE_SIZE} px, batch "
          f"{BATCH_SIZE}, {TRAIN_IMAGES} training + {VAL_IMAGES} validation images, {torch.get_num_threads()} "
          f"threads; median of {args.rounds} alternating rounds")
    runners = {"fit": with_fit, "plain loop": plain_loop, "fit contiguous": with_fit_contiguous}
    times: dict[str, list[float]] = {name: [] for name in runners}
    losses: dict[str, tuple[float, float]] = {}
    for round_index in range(args.rounds):
        order = tuple(runners) if round_index % 2 == 0 else tuple(reversed(runners))
        for name in order:
            model = copy.deepcopy(start)
            train = DataLoader(train_set, batch_size=BATCH_SIZE, shuffle=True,
                               generator=torch.Generator().manual_seed(round_index))
            val = DataLoader(val_set, batch_size=BATCH_SIZE)
            started = time.perf_counter()
            losses[name] = runners[name](model, train, val)
            times[name].append(time.perf_counter() - started)
        print(f"round {round_index + 1}: " + ", ".join(f"{name} {times[name][-1]:.2f} s" for name in runners),
              flush=True)
    ratios = [plain / fitted for plain, fitted in zip(times["plain loop"], times["fit"], strict=True)]
    images = TRAIN_IMAGES + VAL_IMAGES
    print(f"fit: median {statistics.median(times['fit']):.2f} s "
          f"({images / statistics.median(times['fit']):.0f} images/s); plain loop: median "
          f"{statistics.median(times['plain loop']):.2f} s ({images / statistics.median(times['plain loop']):.0f} "
          f"images/s)")
    print(f"plain loop / fit: median ratio {statistics.median(ratios):.2f}x "
          f"(rounds: {', '.join(f'{ratio:.2f}' for ratio in ratios)})")
    own = [plain / fitted for plain, fitted in zip(times["plain loop"], times["fit contiguous"], strict=True)]
    print(f"plain loop / fit with channels-last off: median ratio {statistics.median(own):.2f}x "
          f"(rounds: {', '.join(f'{ratio:.2f}' for ratio in own)})")
    difference = max(abs(a - b) for a, b in zip(losses["fit"], losses["plain loop"], strict=True))
    print(f"last round's losses (train, val): fit {losses['fit'][0]:.5f}, {losses['fit'][1]:.5f}; plain loop "
          f"{losses['plain loop'][0]:.5f}, {losses['plain loop'][1]:.5f} (largest difference {difference:.1e})")


if __name__ == "__main__":
    main()
