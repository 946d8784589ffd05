"""Tests of course_utils.loaders: the Dataset over samples, worker counts and loaders."""

from __future__ import annotations

import platform
from types import SimpleNamespace

import pytest
import torch
from helpers import write_image
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


def test_batches_with_progress_leaves_a_line_of_text_in_a_notebook(monkeypatch):
    """Issue 21, item 7: the widget bar is replaced by one line every viewer shows, and the widget closed."""
    from test_progress import simulate_notebook, widget_is_closed

    area = simulate_notebook(monkeypatch)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(10)), batch_size=3)
    widgets = [area.outputs[-1]["shown"] for _ in loaders.batches_with_progress(loader, description="features")]
    assert len(widgets) == 4 and all(type(widget).__name__ == "TqdmHBox" for widget in widgets)  # a widget ran
    (output,) = area.outputs
    assert set(output["shown"]) == {"text/plain"}
    assert output["shown"]["text/plain"].startswith("features: 4/4 batches in ")
    assert widget_is_closed(widgets[0])
    stopped = loaders.batches_with_progress(loader, description="predict")
    next(stopped)
    next(stopped)
    stopped.close()  # the loop was left during its second batch (an error, or Ctrl+C)
    assert area.outputs[1]["shown"]["text/plain"].startswith("predict: stopped after 1 of 4 batches, ")


# ------------------------------------------- issue 21, item 6: the same seed gives the same numbers on a re-run
def augmenting(image):
    """A random augmentation: the image plus noise from torch's generator."""
    return torch.as_tensor(list(image.getpixel((0, 0))), dtype=torch.float32) + torch.rand(3)


@pytest.fixture
def coloured_samples(make_image_folder):
    return scan_image_folder(make_image_folder({"a": 5, "b": 5}))[0]


def epochs_of(loader, count=2):
    return [[(images.clone(), labels.clone()) for images, labels in loader] for _ in range(count)]


def same_epochs(first, second) -> bool:
    return all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
               for epoch_a, epoch_b in zip(first, second, strict=True) for a, b in zip(epoch_a, epoch_b, strict=True))


def test_augmentations_do_not_depend_on_worker_processes_or_their_history(coloured_samples):
    """Workers stay alive between epochs: before, a second training run over the same loader got other
    augmentations, and a laptop without workers (Windows, macOS) other numbers than one with."""
    in_process = make_loader(coloured_samples, augmenting, batch_size=4, shuffle=True, num_workers=0, seed=5)
    with_worker = make_loader(coloured_samples, augmenting, batch_size=4, shuffle=True, num_workers=1, seed=5)
    first = epochs_of(in_process)
    assert same_epochs(first, epochs_of(with_worker))
    assert not torch.equal(first[0][0][0], first[1][0][0])  # each epoch draws new order and augmentations
    for loader in (in_process, with_worker):
        assert loaders.rewind_loader(loader)  # what fit does when a run starts
        assert same_epochs(first, epochs_of(loader))  # a second run over the same loader sees the same epochs


def test_without_a_seed_the_epochs_follow_the_global_seed(coloured_samples):
    loader = make_loader(coloured_samples, augmenting, batch_size=4, shuffle=True, num_workers=1)
    torch.manual_seed(3)
    first = epochs_of(loader)
    assert not loaders.rewind_loader(loader)
    torch.manual_seed(3)
    assert same_epochs(first, epochs_of(loader))


def test_a_loader_that_does_not_shuffle_leaves_the_global_generator_alone(coloured_samples):
    """Evaluating a model again must not change what later cells draw (a new head's initial weights)."""
    for workers in (0, 1):
        loader = make_loader(coloured_samples, eval_transform(INFO, 8), batch_size=4, shuffle=False,
                             num_workers=workers)
        state = torch.get_rng_state()
        labels = [batch_labels.tolist() for _, batch_labels in loader]
        assert torch.equal(torch.get_rng_state(), state)
        assert sum(labels, []) == [sample.label for sample in coloured_samples]  # in sample order


def test_fit_twice_over_the_same_loader_gives_the_same_history(coloured_samples):
    """The measurement of issue 21, item 6 in small: one loader, two runs from the same seed."""
    from torch import nn

    from course_utils.training import fit

    def run(train_loader):
        loaders.rewind_loader(train_loader)  # fit's first step (see the report on training.py)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.2), nn.Linear(8, 2))
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
        val_loader = make_loader(coloured_samples, augmenting, batch_size=4, shuffle=False, num_workers=0)
        history = fit(model, train_loader, val_loader, epochs=3, optimizer=optimizer, verbose=False)
        return history.drop(columns="seconds")

    train_loader = make_loader(coloured_samples, augmenting, batch_size=4, shuffle=True, num_workers=1, seed=0)
    first = run(train_loader)
    assert first.equals(run(train_loader))
    assert first.equals(run(make_loader(coloured_samples, augmenting, batch_size=4, shuffle=True, num_workers=0,
                                        seed=0)))


def test_in_sample_order_tells_which_loaders_keep_row_i_for_item_i(coloured_samples):
    data = torch.utils.data.TensorDataset(torch.arange(6))
    assert loaders.in_sample_order(torch.utils.data.DataLoader(data, batch_size=2))
    assert not loaders.in_sample_order(torch.utils.data.DataLoader(data, batch_size=2, shuffle=True))
    assert loaders.in_sample_order(make_loader(coloured_samples, augmenting, batch_size=4, shuffle=False))
    assert not loaders.in_sample_order(make_loader(coloured_samples, augmenting, batch_size=4, shuffle=True, seed=0))
    assert not loaders.in_sample_order([(torch.zeros(2), torch.zeros(2))])  # cannot tell: not a DataLoader
