"""Data loaders: a Dataset over samples and the DataLoader settings that suit a laptop, Colab and Kaggle.

    train_loader = make_loader(split.train, train_tf, batch_size=64, shuffle=True, device=env.device, seed=0)

Images are decoded and transformed in background worker processes where that pays off
(:func:`default_num_workers`), and put in pinned memory when the batches go to a CUDA GPU.

**Same seed, same numbers.** Each epoch of a loader from :func:`make_loader` draws, in the notebook's own
process, the order of the images and one seed per image for its random augmentation (crop, rotation, colour
jitter). So what an epoch shows the model does not depend on how many worker processes there are, nor on
what they did before (workers stay alive between epochs and would otherwise carry on their own random
streams, so a second training run over the same loader saw other augmentations). The draws come from the
loader's ``seed`` (its own generator, which :func:`rewind_loader` puts back to its first epoch, as
:func:`course_utils.training.fit` does when a run starts) or, without a seed, from torch's global generator
(``torch.manual_seed(SEED)`` before training fixes them).
"""

from __future__ import annotations

import gc
import os
import platform
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler, get_worker_info

from course_utils.image_files import load_rgb
from course_utils.progress import close_progress_bar, open_progress_bar
from course_utils.samples import Sample

__all__ = ["ImageDataset", "batches_with_progress", "default_num_workers", "in_sample_order", "make_loader",
           "rewind_loader"]


class ImageDataset(Dataset):
    """A PyTorch Dataset over samples: item ``i`` is ``(transform(image), label)``.

    Images are opened with :func:`~course_utils.image_files.load_rgb`, so every file arrives as RGB whatever
    its mode. Without a transform the PIL image itself is returned. Item ``(i, seed)`` (what the loaders of
    :func:`make_loader` ask for) runs the transform with torch's random generator set to ``seed``, so a
    random augmentation depends on that seed alone; the generator's state outside is left as it was.
    """

    def __init__(self, samples: Sequence[Sample], transform: Callable | None = None) -> None:
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: int | tuple[int, int]):
        index, seed = item if isinstance(item, tuple) else (item, None)
        sample = self.samples[index]
        image = load_rgb(sample.path)
        if self.transform is not None and seed is None:
            image = self.transform(image)
        elif self.transform is not None:
            image = _seeded(self.transform, image, seed)
        return image, sample.label


def _seeded(transform: Callable, image, seed: int):
    """``transform(image)`` with torch's CPU generator seeded from ``seed``; in the main process the generator's
    state is put back afterwards (a worker process draws nothing else from it)."""
    generator = torch.default_generator  # torch.manual_seed would also seed every GPU backend: 30 times slower
    if get_worker_info() is not None:
        generator.manual_seed(seed)
        return transform(image)
    state = generator.get_state()
    generator.manual_seed(seed)
    try:
        return transform(image)
    finally:
        generator.set_state(state)


class _EpochSampler(Sampler):
    """Each epoch: the order of the images (shuffled or not) and a seed for each image's augmentation.

    Yields ``(index, seed)`` pairs, drawn in the main process from ``generator`` (seeded from ``seed``); a
    shuffling loader without a seed draws them from one number of torch's global generator per epoch, as
    PyTorch's own shuffling does. A loader that does not shuffle never touches the global generator (its
    seed is 0 unless given), so evaluating a model again does not change what later cells draw.
    """

    def __init__(self, size: int, shuffle: bool, seed: int | None) -> None:
        if seed is None and not shuffle:
            seed = 0
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = self.generator
        if generator is None:
            generator = torch.Generator().manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        order = torch.randperm(self.size, generator=generator) if self.shuffle else torch.arange(self.size)
        seeds = torch.randint(0, 2**62, (self.size,), generator=generator)
        yield from zip(order.tolist(), seeds.tolist(), strict=True)


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))  # the cores this process may use (containers, Colab)
    return os.cpu_count() or 1


def default_num_workers() -> int:
    """How many background processes load images: 0 on Windows and macOS, else up to 4 (one core spared).

    On Windows and macOS worker processes are *spawned*: each re-imports the notebook's code, which fails
    for classes defined in a notebook and makes every epoch start slowly. Loading in the main process
    (0 workers) always works there. Linux *forks* workers cheaply: on the course's 2-core machine one worker
    made the whole offline course faster than none (``benchmarks/bench_loader_workers.py``; figures in
    ``benchmarks/README.md``). Pass ``num_workers=0`` to :func:`make_loader` to compare.
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
    training ``device`` so batches are put in pinned memory for a faster copy to a CUDA GPU. ``seed`` makes
    the order and the augmentations of every epoch reproducible on their own, whatever the number of workers
    (see the module's docstring); without it they follow torch's global seed.
    """
    if num_workers is None:
        num_workers = default_num_workers()
    on_cuda = device is not None and torch.device(device).type == "cuda"
    # The workers' own seeds come from a generator of their own, so that starting them draws nothing from the
    # generators that decide the epochs (every augmentation is seeded per image anyway).
    return _Loader(ImageDataset(samples, transform), batch_size=batch_size,
                   sampler=_EpochSampler(len(samples), shuffle, seed), num_workers=num_workers,
                   pin_memory=on_cuda, persistent_workers=num_workers > 0,
                   generator=torch.Generator().manual_seed(0))


def rewind_loader(loader: Iterable) -> bool:
    """Make the next epoch of a :func:`make_loader` loader with a ``seed`` the same as its first one.

    Returns whether it did: shuffling loaders without a seed (they follow torch's global seed) and other
    loaders are left as they are. :func:`course_utils.training.fit` calls it when a training run starts, so
    that running the same cell again gives the same numbers.
    """
    sampler = getattr(loader, "sampler", None)
    if not isinstance(sampler, _EpochSampler) or sampler.generator is None:
        return False
    sampler.generator.manual_seed(sampler.seed)
    return True


def in_sample_order(loader: Iterable) -> bool:
    """Whether ``loader`` yields its data set's items in their order (a DataLoader with ``shuffle=False`` and
    no sampler of its own), so that row ``i`` of what it yields belongs to item ``i``. ``False`` when unsure."""
    if not isinstance(loader, DataLoader):
        return False
    sampler, batch_sampler = loader.sampler, loader.batch_sampler
    ordered = type(sampler) is SequentialSampler or (type(sampler) is _EpochSampler and not sampler.shuffle)
    return ordered and (batch_sampler is None or (type(batch_sampler) is BatchSampler
                                                  and batch_sampler.sampler is sampler))


def batches_with_progress(loader: Iterable, *, description: str, unit: str = "batch",
                          show: bool = True) -> Iterator:
    """Yield the batches of ``loader`` while a progress bar counts them (``show=False``: no bar).

    Why not simply ``tqdm(loader)``: in Jupyter, tqdm's bar refers to itself, so it and the loader it wraps
    stay in memory until Python's garbage collector runs. A DataLoader with worker processes that is freed
    that way waits about 5 seconds for its workers to time out, and every later loader pays it again when it
    collects the garbage before starting its workers. tqdm also asks the loader for an iterator when it is
    created, before the loop asks for another one. Here the bar only counts: it never holds the loader.
    When it closes, a widget bar leaves one line of text such as ``features: 12/12 batches in 3.1 s``
    (see :mod:`course_utils.progress`).
    """
    total = len(loader) if hasattr(loader, "__len__") else None
    bar = open_progress_bar(total=total, description=description, unit=unit, show=show, mininterval=1.0)
    try:
        for batch in loader:
            yield batch
            bar.update(1)
    finally:
        close_progress_bar(bar)
