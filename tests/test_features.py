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


def test_module_documents_the_augmentation_trade_off():
    text = (feature_module.__doc__ or "") + (compute_features.__doc__ or "")
    assert "augmentation cannot apply to cached features" in text.lower()
