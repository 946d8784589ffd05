"""Data-loader worker processes on this machine: 0, 1 or 2 (a benchmark, not a test).

Uses the lessons' typical loaders in the ``offline`` profile: the synthetic traffic signs (PNG files decoded
and transformed by :func:`course_utils.loaders.make_loader`), and measures two jobs with ``num_workers`` 0,
1 and 2, in turn, round after round, in one process (median seconds):

- *lesson 1*: one training epoch of the ScratchCNN (``train_one_epoch``) with the training transform at
  the lesson's image size and batch size;
- *lessons 2-4*: ``compute_features`` of the packaged EfficientNet-Lite0 over the validation split with the
  eval transform (lesson 2's feature pass).

Worker start-up is included (a fresh loader each time, as the first epoch of a lesson pays it).

    .venv/bin/python benchmarks/bench_loader_workers.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from course_utils import config, datasets, loaders, transforms
from course_utils.backbones import load_backbone
from course_utils.features import compute_features
from course_utils.models import ScratchCNN, feature_extractor
from course_utils.training import train_one_epoch

WORKERS = (0, 1, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = config.resolve("offline", lesson="01_cnn_from_scratch")
    data_dir = os.environ.get("COURSE_DATA_DIR") or config.default_data_dir()
    split = datasets.load_dataset(settings["dataset"], data_dir, profile="offline", seed=0)
    size, batch = settings["image_size"], settings["batch_size"]
    train_tf = transforms.train_transform(mean=(0.5,) * 3, std=(0.5,) * 3, image_size=size)
    backbone, info = load_backbone("efficientnet_lite0", verbose=False)
    extractor = feature_extractor(backbone)
    feature_settings = config.resolve("offline", lesson="02_feature_extraction")
    eval_tf = transforms.eval_transform(info, image_size=feature_settings["image_size"])
    print(f"{len(split.train)} training images at {size} px, batch {batch}; {len(split.val)} validation "
          f"images at {feature_settings['image_size']} px; {os.cpu_count()} cores, {torch.get_num_threads()} "
          f"torch threads; default_num_workers() = {loaders.default_num_workers()}")

    def lesson1(workers: int) -> float:
        torch.manual_seed(0)
        model = ScratchCNN(num_classes=len(split.classes))
        loader = loaders.make_loader(split.train, train_tf, batch_size=batch, shuffle=True, seed=0,
                                     num_workers=workers)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        started = time.perf_counter()
        train_one_epoch(model, loader, optimizer)
        return time.perf_counter() - started

    def features(workers: int) -> float:
        loader = loaders.make_loader(split.val, eval_tf, batch_size=feature_settings["batch_size"], shuffle=False,
                                     num_workers=workers)
        started = time.perf_counter()
        compute_features(extractor, loader, verbose=False)
        return time.perf_counter() - started

    for title, job in (("lesson 1: ScratchCNN training epoch", lesson1), ("Lite0 features, validation split",
                                                                           features)):
        times: dict[int, list[float]] = {workers: [] for workers in WORKERS}
        for round_index in range(args.rounds):
            order = WORKERS if round_index % 2 == 0 else tuple(reversed(WORKERS))
            for workers in order:
                times[workers].append(job(workers))
        cells = ", ".join(f"{workers} workers {statistics.median(times[workers]):.2f} s" for workers in WORKERS)
        print(f"{title}: {cells}", flush=True)


if __name__ == "__main__":
    main()
