"""Channels-last memory format: a speed setting that never changes results or checkpoints."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from course_utils import devices
from course_utils.checkpoints import load_checkpoint, save_checkpoint
from course_utils.evaluation import predict
from course_utils.features import compute_features
from course_utils.models import ScratchCNN, feature_extractor
from course_utils.training import fit

CLASSES = ["a", "b", "c"]


def tiny_cnn(seed: int = 0) -> ScratchCNN:
    torch.manual_seed(seed)
    return ScratchCNN(num_classes=len(CLASSES), channels=(4, 8))


def image_loader(count: int = 24, seed: int = 1, shuffle: bool = False) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(count, 3, 16, 16, generator=generator)
    labels = torch.arange(count) % len(CLASSES)
    images += labels[:, None, None, None] * 0.5  # learnable: the class shifts the brightness
    return DataLoader(TensorDataset(images, labels), batch_size=8, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed) if shuffle else None)


def is_channels_last(model: torch.nn.Module) -> bool:
    weights = [p for p in model.parameters() if p.dim() == 4]
    return bool(weights) and all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
                                 for w in weights)


def test_the_setting_decides_the_format_of_models_and_batches(monkeypatch):
    batch = torch.randn(2, 3, 8, 8)
    monkeypatch.setattr(devices, "CHANNELS_LAST", True)
    assert devices.uses_channels_last("cpu")
    assert is_channels_last(devices.prepare_model(tiny_cnn(), "cpu"))
    assert devices.batch_to_device(batch, "cpu").is_contiguous(memory_format=torch.channels_last)
    assert devices.batch_to_device(torch.arange(4), "cpu").is_contiguous()  # labels are left alone
    monkeypatch.setattr(devices, "CHANNELS_LAST", False)
    assert not devices.uses_channels_last("cpu")
    assert devices.batch_to_device(batch, "cpu").is_contiguous()
    # a model prepared channels-last goes back to contiguous when the setting is off
    model = devices.prepare_model(tiny_cnn(), "cpu", channels_last=True)
    assert not is_channels_last(devices.prepare_model(model, "cpu"))
    assert all(p.is_contiguous() for p in model.parameters())
    # the per-call argument wins over the module setting
    assert devices.uses_channels_last("cpu", channels_last=True)


@pytest.mark.parametrize(("value", "expected"), [("0", False), ("off", False), ("1", True), ("", True)])
def test_the_environment_variable_switches_it(monkeypatch, value, expected):
    monkeypatch.setenv("COURSE_CHANNELS_LAST", value)
    assert devices._channels_last_from_environment() is expected


def test_an_unknown_environment_value_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setenv("COURSE_CHANNELS_LAST", "maybe")
    with pytest.raises(ValueError, match="COURSE_CHANNELS_LAST='maybe'.*use 1"):
        importlib.reload(devices)
    monkeypatch.delenv("COURSE_CHANNELS_LAST")
    importlib.reload(devices)  # restore the module for the other tests


@pytest.mark.parametrize("saved_channels_last", [True, False])
def test_a_checkpoint_reloads_into_the_other_memory_format_with_identical_predictions(tmp_path,
                                                                                      saved_channels_last):
    trained = devices.prepare_model(tiny_cnn(seed=3), "cpu", channels_last=saved_channels_last)
    fit(trained, image_loader(shuffle=True), image_loader(seed=2), epochs=1, verbose=False,
        optimizer=torch.optim.SGD(trained.parameters(), lr=0.1), channels_last=saved_channels_last)
    assert is_channels_last(trained) is saved_channels_last
    path = save_checkpoint(tmp_path / "model.pt", trained, arch="scratch_cnn", classes=CLASSES, mean=None,
                           std=None, input_size=16)
    reloaded = devices.prepare_model(tiny_cnn(seed=9), "cpu", channels_last=not saved_channels_last)
    load_checkpoint(path, reloaded)
    assert is_channels_last(reloaded) is not saved_channels_last  # loading keeps the receiving layout
    for name, value in trained.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[name]), name
    loader = image_loader(seed=5)
    expected = predict(trained, loader, channels_last=saved_channels_last)
    got = predict(reloaded, loader, channels_last=not saved_channels_last)
    assert torch.equal(expected.predicted, got.predicted)
    torch.testing.assert_close(got.probabilities, expected.probabilities, rtol=0, atol=1e-5)


def test_fit_gives_the_same_history_with_channels_last_on_and_off():
    histories, formats = [], []
    for channels_last in (False, True):
        model = tiny_cnn(seed=4)
        history = fit(model, image_loader(shuffle=True), image_loader(seed=2), epochs=3, verbose=False,
                      optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                      channels_last=channels_last)
        histories.append(history.drop(columns="seconds"))
        formats.append(is_channels_last(model))
    assert formats == [False, True]  # the two runs really used different layouts
    assert histories[0]["train_loss"].iloc[0] != histories[0]["train_loss"].iloc[-1]  # it trained
    for column in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "learning_rate"):
        assert histories[1][column].tolist() == pytest.approx(histories[0][column].tolist(), abs=1e-5), column


def test_compute_features_and_predict_put_the_model_channels_last_too():
    backbone = feature_extractor(tiny_cnn())
    assert not is_channels_last(backbone)
    features_last, labels = compute_features(backbone, image_loader(), verbose=False, channels_last=True)
    assert is_channels_last(backbone)
    features_plain, labels_plain = compute_features(backbone, image_loader(), verbose=False, channels_last=False)
    assert not is_channels_last(backbone)
    torch.testing.assert_close(features_last, features_plain, rtol=0, atol=1e-5)
    assert torch.equal(labels, labels_plain)
    model = tiny_cnn()
    predict(model, image_loader(), channels_last=True)
    assert is_channels_last(model)
