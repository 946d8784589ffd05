"""Tests of course_utils.models: scratch CNN, backbones (no download), heads, freezing, parameter counts."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
import torchvision
from torch import nn

from course_utils import models
from course_utils.backbones import load_backbone
from course_utils.models import (
    ClassifierHead,
    ParameterSummary,
    ScratchCNN,
    body_blocks,
    conv_block,
    feature_dim,
    feature_extractor,
    find_head,
    freeze_backbone,
    parameter_groups,
    parameter_summary,
    replace_head,
    same_padding,
    set_frozen_batchnorm_eval,
    unfreeze,
)


@pytest.fixture(scope="module")
def lite0():
    """The offline backbone with its packaged ImageNet weights, loaded once for this module."""
    return load_backbone("efficientnet_lite0")


@pytest.fixture()
def resnet18():
    return load_backbone("resnet18", weights=None)[0]


def _trainable_names(model: nn.Module) -> set[str]:
    return {name for name, parameter in model.named_parameters() if parameter.requires_grad}


# ---------------------------------------------------------------------------------------------- padding, CNN


@pytest.mark.parametrize("kernel_size, dilation", [(1, 1), (3, 1), (5, 1), (7, 1), (3, 2), (5, 3), (2, 2)])
def test_same_padding_keeps_height_and_width(kernel_size, dilation):
    padding = same_padding(kernel_size, dilation)
    convolution = nn.Conv2d(1, 1, kernel_size, padding=padding, dilation=dilation)
    assert convolution(torch.zeros(1, 1, 13, 17)).shape[-2:] == (13, 17)


def test_same_padding_known_answers_and_even_kernel():
    assert [same_padding(k) for k in (1, 3, 5, 7)] == [0, 1, 2, 3]
    assert same_padding(3, dilation=2) == 2
    with pytest.raises(ValueError, match="even kernel has no centre pixel"):
        same_padding(4)
    with pytest.raises(ValueError, match="at least 1"):
        same_padding(0)


def test_conv_block_layers_and_shape():
    block = conv_block(3, 8)
    assert [type(layer) for layer in block] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    assert block(torch.randn(2, 3, 20, 20)).shape == (2, 8, 10, 10)
    assert conv_block(8, 4, kernel_size=5)(torch.randn(1, 8, 12, 12)).shape == (1, 4, 6, 6)


def test_scratch_cnn_any_image_size():
    model = ScratchCNN(num_classes=5, channels=(8, 16), dropout=0.2).eval()
    assert len(model.features) == 2
    for size in (32, 48, 64):
        assert model(torch.randn(2, 3, size, size)).shape == (2, 5)
    assert isinstance(model.pool, nn.AdaptiveAvgPool2d)
    assert model.dropout.p == 0.2
    assert find_head(model) == ("classifier", model.classifier)
    assert len(body_blocks(model)) == 2


# ---------------------------------------------------------------------------------------------- heads


class _LinearHeadModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(6, 10)

    def forward(self, x):
        return self.head(self.body(x))


class _NormHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(6)
        self.fc = nn.Linear(6, 10)

    def forward(self, x):
        return self.fc(self.norm(x))


class _NestedHeadModel(_LinearHeadModel):
    def __init__(self):
        super().__init__()
        self.head = _NormHead()


def test_find_head_in_many_architectures(resnet18, lite0):
    assert find_head(resnet18) == ("fc", resnet18.fc)
    assert find_head(lite0[0])[0] == "classifier"
    mobilenet = torchvision.models.mobilenet_v3_small()
    assert find_head(mobilenet) == ("classifier.3", mobilenet.classifier[-1])
    assert find_head(torchvision.models.efficientnet_b0())[0] == "classifier.1"
    assert find_head(_LinearHeadModel())[0] == "head"
    assert find_head(_NestedHeadModel())[0] == "head.fc"
    with pytest.raises(ValueError, match="Could not find the classifier"):
        find_head(nn.Sequential(nn.Conv2d(3, 3, 1)))


@pytest.mark.parametrize("build", [
    lambda: torchvision.models.resnet18(),
    lambda: timm.create_model("efficientnet_lite0", pretrained=False),
    lambda: torchvision.models.mobilenet_v3_small(),
    _LinearHeadModel,
    _NestedHeadModel,
])
def test_replace_head_keeps_features_and_sets_classes(build):
    model = build().eval()
    in_features = feature_dim(model)
    assert replace_head(model, 4) is model
    path, head = find_head(model)
    assert type(head) is nn.Linear and head.in_features == in_features and head.out_features == 4
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 4)
    replace_head(model, 7, hidden_units=(16,), dropout=0.1)
    path_with_hidden, head = find_head(model)
    assert path_with_hidden == path and isinstance(head, ClassifierHead)
    assert head.in_features == feature_dim(model) == in_features and head.out_features == 7
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    replace_head(model, 3)  # replacing again swaps the whole head, not just its last layer
    assert find_head(model)[0] == path and model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    assert feature_dim(model) == in_features


def test_multi_layer_head(resnet18):
    replace_head(resnet18, 3, hidden_units=(256, 64), dropout=0.4)
    kinds = [type(layer) for layer in resnet18.fc]
    assert kinds == [nn.Dropout, nn.Linear, nn.ReLU] * 2 + [nn.Dropout, nn.Linear]
    assert [layer.out_features for layer in resnet18.fc if isinstance(layer, nn.Linear)] == [256, 64, 3]
    assert all(layer.p == 0.4 for layer in resnet18.fc if isinstance(layer, nn.Dropout))
    assert resnet18.fc[1].in_features == 512


def test_feature_extractor_is_a_copy_giving_features(resnet18, lite0):
    replace_head(resnet18, 4)
    extractor = feature_extractor(resnet18).eval()
    assert isinstance(extractor.fc, nn.Identity) and isinstance(resnet18.fc, nn.Linear)
    assert extractor(torch.randn(2, 3, 64, 64)).shape == (2, feature_dim(resnet18)) == (2, 512)
    lite_extractor = feature_extractor(lite0[0]).eval()
    assert lite_extractor(torch.randn(1, 3, 64, 64)).shape == (1, 1280) and feature_dim(lite0[0]) == 1280
    assert lite0[0].classifier.out_features == 1000


# ---------------------------------------------------------------------------------------------- freezing


def test_freeze_backbone_leaves_only_the_head(resnet18):
    replace_head(resnet18, 4)
    assert freeze_backbone(resnet18) is resnet18
    assert _trainable_names(resnet18) == {"fc.weight", "fc.bias"}
    summary = parameter_summary(resnet18)
    assert summary == ParameterSummary(total=11_178_564, trainable=2_052)
    assert str(summary) == "11,178,564 parameters, 2,052 trainable (0.02%)"
    assert summary.trainable_share == pytest.approx(2052 / 11_178_564)


def test_frozen_batchnorm_keeps_running_statistics(resnet18):
    freeze_backbone(replace_head(resnet18, 4))
    resnet18.train()
    assert set_frozen_batchnorm_eval(resnet18) == 20  # every batch norm of ResNet-18
    before = resnet18.bn1.running_mean.clone()
    resnet18(torch.randn(2, 3, 32, 32) * 5 + 3)
    assert torch.equal(resnet18.bn1.running_mean, before)
    assert resnet18.fc.training  # the head still trains (dropout active)
    unfreeze(resnet18, last_blocks=1)
    resnet18.train()
    assert set_frozen_batchnorm_eval(resnet18) == 20 - 5  # layer4 holds 5 batch norms
    assert resnet18.layer4[0].bn1.training and not resnet18.layer3[0].bn1.training


def test_body_blocks_cover_the_body_once(resnet18, lite0):
    for model, expected in [(resnet18, 5), (lite0[0], 9), (torchvision.models.mobilenet_v3_small(), 13)]:
        blocks = body_blocks(model)
        assert len(blocks) == expected
        in_blocks = [id(p) for block in blocks for p in block.parameters()]
        head = {id(p) for p in models._get(model, models._head_root(model)).parameters()}
        assert len(in_blocks) == len(set(in_blocks))
        assert set(in_blocks) | head == {id(p) for p in model.parameters()}
    assert body_blocks(resnet18)[-1] is resnet18.layer4
    assert body_blocks(lite0[0])[1] is lite0[0].blocks[0]


def test_unfreeze_all_or_last_blocks(resnet18):
    replace_head(resnet18, 4)
    freeze_backbone(resnet18)
    unfreeze(resnet18, last_blocks=2)
    trainable = _trainable_names(resnet18)
    assert {name.split(".")[0] for name in trainable} == {"layer3", "layer4", "fc"}
    assert len(trainable) == sum(1 for name, _ in resnet18.named_parameters()
                                 if name.split(".")[0] in {"layer3", "layer4", "fc"})
    unfreeze(resnet18, last_blocks=0)
    assert _trainable_names(resnet18) == {"fc.weight", "fc.bias"}
    assert unfreeze(resnet18) is resnet18
    assert parameter_summary(resnet18).trainable == parameter_summary(resnet18).total
    with pytest.raises(ValueError, match="between 0 and 5"):
        unfreeze(resnet18, last_blocks=6)


def test_unfreeze_last_blocks_of_efficientnet(lite0):
    model = copy.deepcopy(lite0[0])
    unfreeze(model, last_blocks=2)
    prefixes = {name.split(".")[0] + ("." + name.split(".")[1] if name.startswith("blocks") else "")
                for name in _trainable_names(model)}
    assert prefixes == {"blocks.6", "conv_head", "bn2", "classifier"}


# ---------------------------------------------------------------------------------------------- optimizer


def test_parameter_groups_discriminative_learning_rates(resnet18):
    replace_head(resnet18, 4)
    freeze_backbone(resnet18)
    groups = parameter_groups(resnet18, head_lr=1e-3, body_lr=1e-4)
    assert [(group["name"], group["lr"]) for group in groups] == [("head", 1e-3)]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in resnet18.fc.parameters()}

    unfreeze(resnet18, last_blocks=1)
    groups = parameter_groups(resnet18, head_lr=1e-3, body_lr=1e-4)
    assert [(group["name"], group["lr"]) for group in groups] == [("head", 1e-3), ("body", 1e-4)]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in resnet18.layer4.parameters()}
    optimizer = torch.optim.SGD(groups, lr=0.5)
    assert [group["lr"] for group in optimizer.param_groups] == [1e-3, 1e-4]
