"""Tests of course_utils.loaders: the Dataset over samples, worker counts and loaders."""

from __future__ import annotations

import platform
from types import SimpleNamespace

import pytest
import torch
from conftest import write_image
from PIL import Image

from course_utils import loaders
from course_utils.datasets import scan_image_folder
from course_utils.loaders import ImageDataset, default_num_workers, make_loader
from course_utils.samples import Sample
from course_utils.transforms import eval_transform

INFO = SimpleNamespace(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), input_size=24)


def test_image_dataset_returns_tensor_and_label(tmp_path):
    path = write_image(tmp_path / "gray.png", mode="L", colour=10)
    dataset = ImageDataset([Sample(path, 3, "gray")], eval_transform(INFO, image_size=8))
    image, label = dataset[0]
    assert len(dataset) == 1 and label == 3 and image.shape == (3, 8, 8)
    raw, _ = ImageDataset([Sample(path, 3, "gray")])[0]
    assert isinstance(raw, Image.Image) and raw.mode == "RGB"


@pytest.mark.parametrize("system", ["Windows", "Darwin"])
def test_no_worker_processes_on_windows_and_macos(monkeypatch, system):
    monkeypatch.setattr(platform, "system", lambda: system)
    assert default_num_workers() == 0


def test_linux_uses_spare_cores_but_at_most_four(monkeypatch):
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(loaders, "_cpu_count", lambda: 64)
    assert default_num_workers() == 4
    monkeypatch.setattr(loaders, "_cpu_count", lambda: 1)
    assert default_num_workers() == 0


def test_make_loader_yields_normalised_batches(make_image_folder, monkeypatch):
    monkeypatch.setattr(platform, "system", lambda: "Windows")
    samples, classes = scan_image_folder(make_image_folder({"a": 3, "b": 2}, size=(10, 7)))
    loader = make_loader(samples, eval_transform(INFO, image_size=12), batch_size=4, shuffle=False)
    assert loader.num_workers == 0 and not loader.pin_memory
    batches = list(loader)
    images, labels = batches[0]
    assert images.shape == (4, 3, 12, 12) and images.dtype == torch.float32
    assert labels.tolist() == [0, 0, 0, 1] and batches[1][0].shape == (1, 3, 12, 12)
    assert images.min() >= -1.0 and images.max() <= 1.0 and images.min() < 0  # normalised, not 0..1
    first = [labels.tolist() for _, labels in make_loader(samples, eval_transform(INFO, 12), batch_size=5,
                                                             shuffle=True, seed=3)]
    again = [labels.tolist() for _, labels in make_loader(samples, eval_transform(INFO, 12), batch_size=5,
                                                             shuffle=True, seed=3)]
    assert first == again


def test_make_loader_with_workers(make_image_folder):
    samples, _ = scan_image_folder(make_image_folder({"a": 2, "b": 2}))
    loader = make_loader(samples, eval_transform(INFO, image_size=8), batch_size=2, shuffle=False,
                         num_workers=1)
    assert loader.persistent_workers
    assert sum(len(labels) for _, labels in loader) == 4


def test_workers_do_not_inherit_garbage_that_their_collector_would_delete(tmp_path):
    """Garbage left in the notebook's process must be collected there, not in a forked worker (where an old
    loader's iterator, deleted by the worker, prints PyTorch's "can only test a child process" traceback).
    Linux forks its workers; this test needs that (the course uses no workers on Windows and macOS)."""
    import gc
    import os

    record = tmp_path / "deleted_in.txt"

    class Garbage:
        def __init__(self):
            self.myself = self  # a reference cycle: only the garbage collector deletes it

        def __del__(self):
            with open(record, "a") as file:
                file.write(f"{os.getpid()}\n")

    def collecting_transform(image):
        gc.collect()  # a worker's collector runs while it loads images
        return torch.zeros(3, 2, 2)

    path = write_image(tmp_path / "a.png", mode="RGB", colour=(1, 2, 3))
    loader = make_loader([Sample(path, 0, "a")] * 2, collecting_transform, batch_size=1, shuffle=False,
                         num_workers=1)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        Garbage()
        assert len(list(loader)) == 2
        gc.collect()
    finally:
        if was_enabled:
            gc.enable()
    assert record.read_text().split() == [str(os.getpid())]


class _CountingLoader(torch.utils.data.DataLoader):
    """A DataLoader that counts how many iterators were asked of it."""

    iterators_asked = 0

    def __iter__(self):
        self.iterators_asked += 1
        return super().__iter__()


def test_batches_with_progress_yields_every_batch_once_and_never_holds_the_loader(monkeypatch):
    import gc
    import weakref

    import tqdm.asyncio
    import tqdm.auto
    import tqdm.notebook

    class JupyterBar(tqdm.notebook.tqdm, tqdm.asyncio.tqdm):  # what tqdm.auto gives inside Jupyter
        pass

    monkeypatch.setattr(tqdm.auto, "tqdm", JupyterBar)  # a widget bar, which refers to itself
    loader = _CountingLoader(torch.utils.data.TensorDataset(torch.arange(10)), batch_size=3)
    seen = [batch[0].tolist() for batch in loaders.batches_with_progress(loader, description="test")]
    assert seen == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert loader.iterators_asked == 1  # tqdm(loader) asks for two: one when created, one for the loop
    gone = weakref.ref(loader)
    gc.disable()  # a loader with workers that waits for the collector pays ~5 s: it must go at once
    try:
        del loader
        assert gone() is None
    finally:
        gc.enable()
