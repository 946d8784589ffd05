"""Data loaders: a Dataset over samples and the DataLoader settings that suit a laptop, Colab and Kaggle.

    train_loader = make_loader(split.train, train_tf, batch_size=64, shuffle=True, device=env.device, seed=0)

Images are decoded and transformed in background worker processes where that pays off
(:func:`default_num_workers`), and put in pinned memory when the batches go to a CUDA GPU.
"""

from __future__ import annotations

import gc
import os
import platform
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from course_utils.image_files import load_rgb
from course_utils.samples import Sample

__all__ = ["ImageDataset", "batches_with_progress", "default_num_workers", "make_loader"]


class ImageDataset(Dataset):
    """A PyTorch Dataset over samples: item ``i`` is ``(transform(image), label)``.

    Images are opened with :func:`~course_utils.image_files.load_rgb`, so every file arrives as RGB whatever
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
    (0 workers) always works there. Linux *forks* workers cheaply, so they pay off. On the course's 2-core
    machine (benchmarks/bench_loader_workers.py, idle) one worker made lesson 1's training epoch 1.09x faster
    than none, while the feature pass was 1.44x faster without; the whole offline course took 2 min 17 s with
    one worker and 2 min 25 s with none, so one it is. Pass ``num_workers=0`` to :func:`make_loader` to compare.
    """
    if platform.system() in ("Windows", "Darwin"):
        return 0
    return max(0, min(4, _cpu_count() - 1))


class _Loader(DataLoader):
    """A DataLoader that clears Python's garbage before it forks its worker processes.

    A forked worker inherits every object of the notebook's process, garbage included. If the worker's own
    garbage collector then deletes an old loader's iterator, that iterator tries to stop *its* workers from
    the wrong process and PyTorch prints "Exception ignored in ... can only test a child process" with a
    traceback. Collecting the garbage first leaves nothing of the kind to inherit.
    """

    def _get_iterator(self):  # called when workers are about to start (once, with persistent workers)
        if self.num_workers > 0:
            gc.collect()
        return super()._get_iterator()


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
    return _Loader(ImageDataset(samples, transform), batch_size=batch_size, shuffle=shuffle,
                   num_workers=num_workers, pin_memory=on_cuda, persistent_workers=num_workers > 0,
                   generator=generator)


def batches_with_progress(loader: Iterable, *, description: str, unit: str = "batch",
                          show: bool = True) -> Iterator:
    """Yield the batches of ``loader`` while a progress bar counts them (``show=False``: no bar).

    Why not simply ``tqdm(loader)``: in Jupyter, tqdm's bar refers to itself, so it and the loader it wraps
    stay in memory until Python's garbage collector runs. A DataLoader with worker processes that is freed
    that way waits about 5 seconds for its workers to time out, and every later loader pays it again when it
    collects the garbage before starting its workers. tqdm also asks the loader for an iterator when it is
    created, before the loop asks for another one. Here the bar only counts: it never holds the loader.
    """
    from tqdm.auto import tqdm

    total = len(loader) if hasattr(loader, "__len__") else None
    bar = tqdm(total=total, desc=description, unit=unit, mininterval=1.0, disable=not show)
    try:
        for batch in loader:
            yield batch
            bar.update(1)
    finally:
        bar.close()
