"""Feature extraction: computed once, cached in memory and on disk, and a head trained on them."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import features as feature_module
from course_utils.features import (
    clear_feature_cache,
    compute_features,
    feature_cache_key,
    feature_loader,
    train_head_on_features,
)
from course_utils.samples import Sample
from course_utils.training import fit


class CountingBackbone(nn.Module):
    """A tiny frozen 'backbone' (conv, batch norm, pooling) that counts the images it has seen."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.images_seen = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.images_seen += len(images)
        return self.body(images)


def image_data(n: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = torch.rand(n, 3, 8, 8, generator=generator) * 0.5
    images[:, 0] += labels[:, None, None] * 0.5  # class 1 is redder
    return TensorDataset(images, labels)


@pytest.fixture(autouse=True)
def empty_memory_cache():
    clear_feature_cache()
    yield
    clear_feature_cache()


def test_features_are_float32_cpu_rows_in_loader_order():
    backbone = CountingBackbone().train()
    data = image_data(10, 0)
    features, labels = compute_features(backbone, DataLoader(data, batch_size=4), verbose=False)
    assert features.shape == (10, 6) and features.dtype == torch.float32 and features.device.type == "cpu"
    assert torch.equal(labels, data.tensors[1])
    assert backbone.training  # its mode is given back
    backbone.eval()
    assert torch.allclose(features, backbone(data.tensors[0]).detach(), atol=1e-6)
    features.requires_grad_(True)  # ordinary tensors, usable for training


def test_memory_and_disk_caches_skip_the_backbone(tmp_path):
    backbone = CountingBackbone()
    loader = DataLoader(image_data(12, 0), batch_size=5)
    first = compute_features(backbone, loader, cache_key="k1", verbose=False)
    assert backbone.images_seen == 12
    again = compute_features(backbone, loader, cache_key="k1", verbose=False)
    assert backbone.images_seen == 12 and again[0] is first[0]
    on_disk = compute_features(backbone, loader, cache_dir=tmp_path, cache_key="k2", verbose=False)
    assert backbone.images_seen == 24
    assert [p.name for p in tmp_path.iterdir()] == ["features-k2.pt"]  # no temporary file left
    clear_feature_cache()  # a new session: only the file remains
    from_disk = compute_features(backbone, loader, cache_dir=tmp_path, cache_key="k2", verbose=False)
    assert backbone.images_seen == 24
    assert torch.equal(from_disk[0], on_disk[0]) and torch.equal(from_disk[1], on_disk[1])
    (tmp_path / "features-k2.pt").write_bytes(b"garbage")  # a damaged cache file is recomputed
    clear_feature_cache()
    recomputed = compute_features(backbone, loader, cache_dir=tmp_path, cache_key="k2", verbose=False)
    assert backbone.images_seen == 36 and torch.equal(recomputed[0], on_disk[0])
    with pytest.raises(ValueError, match="cache_key"):
        compute_features(backbone, loader, cache_dir=tmp_path, verbose=False)


def test_cache_key_changes_with_backbone_weights_data_and_transform():
    samples = [Sample(Path("a/1.png"), 0, "a/1"), Sample(Path("b/2.png"), 1, "b/2")]
    key = feature_cache_key("resnet18", "IMAGENET1K_V1", samples, "Resize(64)")
    assert key.startswith("resnet18-")
    assert key == feature_cache_key("resnet18", "IMAGENET1K_V1", [(Path("a/1.png"), 0), ("b/2.png", 1)],
                                    "Resize(64)")
    others = {
        feature_cache_key("resnet50", "IMAGENET1K_V1", samples, "Resize(64)"),
        feature_cache_key("resnet18", None, samples, "Resize(64)"),
        feature_cache_key("resnet18", "IMAGENET1K_V1", samples[:1], "Resize(64)"),
        feature_cache_key("resnet18", "IMAGENET1K_V1", [samples[0], samples[1]._replace(label=0)],
                          "Resize(64)"),
        feature_cache_key("resnet18", "IMAGENET1K_V1", samples, "Resize(96)"),
    }
    assert len(others) == 5 and key not in others


def test_head_on_cached_features_matches_the_frozen_model_trained_on_images():
    backbone = CountingBackbone().eval()
    for parameter in backbone.parameters():
        parameter.requires_grad_(False)
    train, val = image_data(40, 1), image_data(20, 2)
    torch.manual_seed(1)
    head = nn.Linear(6, 2)
    full_model = nn.Sequential(backbone, copy.deepcopy(head))

    train_features, train_labels = compute_features(backbone, DataLoader(train, batch_size=16),
                                                    verbose=False)
    val_features, val_labels = compute_features(backbone, DataLoader(val, batch_size=16), verbose=False)
    cached = train_head_on_features(
        head, train_features, train_labels, val_features, val_labels, epochs=5, batch_size=8,
        optimizer=torch.optim.SGD(head.parameters(), lr=0.5), generator=torch.Generator().manual_seed(0),
        verbose=False)

    seen = backbone.images_seen
    train_loader = DataLoader(train, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    per_epoch = fit(full_model, train_loader, DataLoader(val, batch_size=8), epochs=5,
                    optimizer=torch.optim.SGD(full_model[1].parameters(), lr=0.5), verbose=False)
    assert backbone.images_seen - seen == 5 * 60  # the slow way runs the backbone every epoch
    columns = ["train_loss", "train_accuracy", "val_loss", "val_accuracy"]
    assert torch.allclose(torch.tensor(cached[columns].values), torch.tensor(per_epoch[columns].values),
                          atol=1e-5)
    assert torch.allclose(head.weight, full_model[1].weight, atol=1e-5)
    assert cached["train_loss"].iloc[-1] < cached["train_loss"].iloc[0]


def test_feature_loader_checks_lengths():
    loader = feature_loader(torch.zeros(5, 3), torch.zeros(5, dtype=torch.long), batch_size=2)
    assert [len(batch[0]) for batch in loader] == [2, 2, 1]
    with pytest.raises(ValueError, match="labels"):
        feature_loader(torch.zeros(5, 3), torch.zeros(4), batch_size=2)


def test_cached_features_keep_the_first_draw_of_a_random_augmentation():
    class RandomlyShifted(torch.utils.data.Dataset):
        """Four images; every read adds fresh noise, as a random augmentation would."""

        samples = [(f"image_{index}.png", 0) for index in range(4)]

        def __len__(self):
            return 4

        def __getitem__(self, index):
            return torch.full((3, 4, 4), float(index)) + torch.randn(3, 4, 4), 0

    loader = DataLoader(RandomlyShifted(), batch_size=2)
    backbone = nn.Flatten()
    first, _ = compute_features(backbone, loader, cache_key="augmented", verbose=False)
    again, _ = compute_features(backbone, loader, cache_key="augmented", verbose=False)
    fresh, _ = compute_features(backbone, loader, verbose=False)
    assert torch.equal(first, again)  # the cache serves the first pass: augmentation cannot apply to it
    assert not torch.equal(first, fresh)  # while each pass over the images draws new noise


# -------------------------------- issue 21, item 1: one wrong try (shuffle=True) must not poison the cache
def _signs(make_image_folder):
    """Twelve tiny images of three colours (classes), the eval transform, and the loaders of Exercise 3."""
    from types import SimpleNamespace

    from course_utils.datasets import scan_image_folder
    from course_utils.loaders import make_loader
    from course_utils.transforms import eval_transform

    samples, _ = scan_image_folder(make_image_folder({"a": 4, "b": 4, "c": 4}))
    transform = eval_transform(SimpleNamespace(mean=(0.5,) * 3, std=(0.5,) * 3, input_size=8))

    def loader(shuffle, order=samples):
        return make_loader(order, transform, batch_size=5, shuffle=shuffle, num_workers=0, seed=1 if shuffle else None)

    return samples, transform, loader


def test_a_shuffled_loader_never_poisons_the_cache_of_the_right_answer(make_image_folder, tmp_path, capsys):
    samples, transform, loader = _signs(make_image_folder)
    cache = tmp_path / "feature_cache"
    in_order = [sample.label for sample in samples]
    backbone = CountingBackbone()
    expected, _ = compute_features(backbone, loader(False), verbose=False)  # no cache: the truth
    key = feature_cache_key("tiny", "weights", samples, transform)  # the key of the samples in order

    wrong, wrong_labels = compute_features(backbone, loader(True), cache_dir=cache, cache_key=key, verbose=False)
    assert wrong_labels.tolist() != in_order  # the wrong answer: the check rightly fails it
    assert "not cached: the loader does not read its images in order" in capsys.readouterr().out
    assert not cache.exists()  # nothing stored under the right answer's key

    seen = backbone.images_seen
    right, right_labels = compute_features(backbone, loader(False), cache_dir=cache, cache_key=key, verbose=False)
    assert right_labels.tolist() == in_order and torch.equal(right, expected)
    assert backbone.images_seen == seen + 12  # computed, not served from a poisoned cache

    clear_feature_cache()  # a restarted kernel: only the file is left
    again, again_labels = compute_features(backbone, loader(False), cache_dir=cache, cache_key=key, verbose=False)
    assert again_labels.tolist() == in_order and torch.equal(again, expected)
    assert backbone.images_seen == seen + 12  # from the file

    _, labels = compute_features(backbone, loader(True), cache_dir=cache, cache_key=key, verbose=False)
    assert backbone.images_seen == seen + 24  # the rows in order are not served to a shuffling loader either
    assert labels.tolist() != in_order  # so the wrong answer still fails, whatever ran before


def test_a_shuffled_loader_never_poisons_the_memory_cache(make_image_folder):
    samples, transform, loader = _signs(make_image_folder)
    key = feature_cache_key("tiny", "weights", samples, transform)
    backbone = CountingBackbone()
    compute_features(backbone, loader(True), cache_key=key, verbose=False)
    _, labels = compute_features(backbone, loader(False), cache_key=key, verbose=False)
    assert labels.tolist() == [sample.label for sample in samples]


def test_features_of_other_images_or_another_order_are_never_served(make_image_folder, tmp_path, capsys):
    """A key that does not describe the loader (built from other samples) cannot fetch another loader's rows."""
    samples, transform, loader = _signs(make_image_folder)
    key = feature_cache_key("tiny", "weights", samples, transform)
    backbone, cache = CountingBackbone(), tmp_path / "cache"
    compute_features(backbone, loader(False), cache_dir=cache, cache_key=key, verbose=False)
    reversed_samples = samples[::-1]
    _, labels = compute_features(backbone, loader(False, reversed_samples), cache_dir=cache, cache_key=key,
                                 verbose=False)  # the memory holds the rows in the other order
    assert labels.tolist() == [sample.label for sample in reversed_samples]
    assert "those kept under" in capsys.readouterr().out
    clear_feature_cache()  # now only the file holds the reversed rows
    _, labels = compute_features(backbone, loader(False), cache_dir=cache, cache_key=key, verbose=False)
    assert labels.tolist() == [sample.label for sample in samples]
    assert "it holds the features of other images, or of another order" in capsys.readouterr().out


def test_a_cache_file_poisoned_by_an_older_version_is_recomputed(make_image_folder, tmp_path, capsys):
    """The file an older course wrote for a shuffled loader (valid checksum, no record of its order)."""
    samples, transform, loader = _signs(make_image_folder)
    key = feature_cache_key("tiny", "weights", samples, transform)
    backbone = CountingBackbone()
    cache = tmp_path / "cache"
    cache.mkdir()
    shuffled, shuffled_labels = compute_features(backbone, loader(True), verbose=False)
    torch.save({"features": shuffled, "labels": shuffled_labels, "key": key, "shape": list(shuffled.shape),
                "sha256": feature_module._cache_checksum(shuffled, shuffled_labels)},
               cache / f"features-{key}.pt")
    _, labels = compute_features(backbone, loader(False), cache_dir=cache, cache_key=key, verbose=False)
    assert labels.tolist() == [sample.label for sample in samples]
    assert "does not record which images it holds" in capsys.readouterr().out


def test_warm_and_cold_caches_leave_the_global_generator_alike(make_image_folder, tmp_path):
    """Issue 21, item 6: a head made after the features (lesson 5) got other initial weights on a second run of a
    lesson, because computing the features drew from torch's global generator and loading them did not."""
    samples, transform, loader = _signs(make_image_folder)
    key = feature_cache_key("tiny", "weights", samples, transform)
    states = []
    for _ in ("cold", "warm"):
        clear_feature_cache()
        torch.manual_seed(0)
        compute_features(CountingBackbone(), loader(False), cache_dir=tmp_path / "cache", cache_key=key, verbose=False)
        list(feature_loader(torch.zeros(5, 2), torch.zeros(5, dtype=torch.long), batch_size=2))  # evaluating
        states.append(torch.get_rng_state())
    assert torch.equal(*states)


def test_features_of_images_keeps_the_samples_order_and_serves_the_second_call_from_the_cache(make_image_folder,
                                                                                               tmp_path):
    from types import SimpleNamespace

    from course_utils.features import features_of_images

    samples, transform, loader = _signs(make_image_folder)
    backbone, cache = CountingBackbone(), tmp_path / "feature_cache"
    info = SimpleNamespace(name="tiny", weights="weights")
    expected, _ = compute_features(backbone, loader(False), verbose=False)
    seen = backbone.images_seen
    features, labels = features_of_images(backbone, samples, transform, info, batch_size=5, cache_dir=cache,
                                          num_workers=0, verbose=False)
    assert torch.equal(features, expected) and labels.tolist() == [sample.label for sample in samples]
    assert backbone.images_seen == seen + 12
    key = feature_cache_key("tiny", "weights", samples, transform)
    assert [path.name for path in cache.iterdir()] == [f"features-{key}.pt"]
    clear_feature_cache()  # a restarted kernel: the file answers
    again, _ = features_of_images(backbone, samples, transform, info, cache_dir=cache, num_workers=0, verbose=False)
    assert torch.equal(again, expected) and backbone.images_seen == seen + 12
