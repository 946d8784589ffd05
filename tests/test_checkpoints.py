"""Checkpoints: round trip, atomic writes, clear mismatch errors, safe (weights-only) loading."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_utils import checkpoints
from course_utils.backbones import load_backbone
from course_utils.checkpoints import (
    CheckpointError,
    CheckpointMismatchError,
    build_model_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from course_utils.models import ScratchCNN, replace_head

CLASSES = ["priority_road", "give_way", "stop", "no_entry"]
META = {"classes": CLASSES, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "input_size": 32}


def small_cnn(num_classes: int = 4, seed: int = 0) -> ScratchCNN:
    torch.manual_seed(seed)
    return ScratchCNN(num_classes, channels=(4, 8), dropout=0.1)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    state_b = b.state_dict()
    return all(torch.equal(value, state_b[key]) for key, value in a.state_dict().items())


def test_round_trip_restores_weights_metadata_and_optimizer(tmp_path):
    model = small_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()  # so that the optimizer has state to save
    path = save_checkpoint(tmp_path / "model.pt", model, arch="scratch_cnn", epoch=3,
                           metrics={"val_accuracy": torch.tensor(0.75)}, optimizer=optimizer, **META)
    fresh, fresh_optimizer = small_cnn(seed=1), torch.optim.Adam(small_cnn(seed=1).parameters())
    assert not same_weights(model, fresh)
    metadata = load_checkpoint(path, fresh, optimizer=fresh_optimizer)
    assert same_weights(model, fresh)
    assert metadata["arch"] == "scratch_cnn" and metadata["classes"] == CLASSES
    assert metadata["num_classes"] == 4 and metadata["input_size"] == 32 and metadata["epoch"] == 3
    assert metadata["mean"] == [0.5, 0.5, 0.5] and metadata["metrics"] == {"val_accuracy": 0.75}
    assert set(metadata["versions"]) >= {"torch", "torchvision", "course_utils"}
    assert fresh_optimizer.state_dict()["state"][0]["step"] == 1
    # Only plain types inside: the file loads with weights_only=True straight from torch.
    raw = torch.load(path, weights_only=True)
    assert set(raw) >= {"model_state", "metadata", "optimizer_state"}


def test_build_model_from_checkpoint_rebuilds_a_scratch_cnn(tmp_path):
    model = small_cnn().eval()
    save_checkpoint(tmp_path / "cnn.pt", model, arch="scratch_cnn", **META)
    rebuilt, metadata = build_model_from_checkpoint(tmp_path / "cnn.pt")
    assert isinstance(rebuilt, ScratchCNN) and metadata["classes"] == CLASSES
    images = torch.randn(3, 3, 32, 32)
    assert torch.equal(rebuilt(images), model(images))


def test_build_model_from_checkpoint_rebuilds_a_backbone_with_a_custom_head(tmp_path):
    model, _ = load_backbone("resnet18", weights=None)
    model = replace_head(model, 4, hidden_units=(16,), dropout=0.2).eval()
    save_checkpoint(tmp_path / "resnet.pt", model, arch="resnet18", **META)
    rebuilt, metadata = build_model_from_checkpoint(tmp_path / "resnet.pt")
    assert metadata["model_config"] == {"hidden_units": [16], "dropout": 0.2}
    images = torch.randn(2, 3, 32, 32)
    assert torch.allclose(rebuilt(images), model(images))


class Crash(RuntimeError):
    pass


def test_a_crash_during_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    model = small_cnn()
    save_checkpoint(path, model, arch="scratch_cnn", epoch=1, **META)
    before = path.read_bytes()

    def crashing_save(obj, file, *args, **kwargs):
        with open(file, "wb") as handle:
            handle.write(b"PK\x03\x04 half a checkpoint")
        raise Crash("power cut")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(Crash):
        save_checkpoint(path, small_cnn(seed=2), arch="scratch_cnn", epoch=2, **META)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary file left behind
    fresh = small_cnn(seed=3)
    assert load_checkpoint(path, fresh)["epoch"] == 1 and same_weights(model, fresh)


def test_class_count_mismatch_says_which_and_what_to_do(tmp_path):
    save_checkpoint(tmp_path / "four.pt", small_cnn(4), arch="scratch_cnn", **META)
    with pytest.raises(CheckpointMismatchError) as error:
        load_checkpoint(tmp_path / "four.pt", small_cnn(5))
    message = str(error.value)
    assert "checkpoint has 4 classes" in message and "model has 5" in message
    assert "build_model_from_checkpoint" in message and "replace_head" in message


def test_architecture_mismatch_says_which_architecture(tmp_path):
    save_checkpoint(tmp_path / "cnn.pt", small_cnn(4), arch="scratch_cnn", **META)
    other = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
    with pytest.raises(CheckpointMismatchError, match="Architecture mismatch.*'scratch_cnn'"):
        load_checkpoint(tmp_path / "cnn.pt", other)
    wider = ScratchCNN(4, channels=(4, 16), dropout=0.1)  # same layers, other shapes
    with pytest.raises(CheckpointMismatchError, match="Architecture mismatch"):
        load_checkpoint(tmp_path / "cnn.pt", wider)


def test_a_pickled_model_is_refused(tmp_path):
    path = tmp_path / "whole_model.pt"
    torch.save(small_cnn(), path)  # the unsafe habit of the old tutorials
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(path)
    payload = {"format": checkpoints.CHECKPOINT_FORMAT, "model_state": {}, "metadata": {"hook": print}}
    torch.save(payload, tmp_path / "sneaky.pt")
    with pytest.raises(CheckpointError, match="pickled"):
        build_model_from_checkpoint(tmp_path / "sneaky.pt")


def test_a_bare_state_dict_gets_a_helpful_error(tmp_path):
    torch.save(small_cnn().state_dict(), tmp_path / "state.pt")
    with pytest.raises(CheckpointError, match="load_state_dict"):
        load_checkpoint(tmp_path / "state.pt")


def test_missing_optimizer_state_is_reported(tmp_path):
    model = small_cnn()
    save_checkpoint(tmp_path / "m.pt", model, arch="scratch_cnn", **META)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(tmp_path / "m.pt", model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))


def test_the_contents_checksum_covers_optimizer_and_scheduler_and_survives_a_reload(tmp_path):
    model = small_cnn()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.99))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "m.pt", model, arch="scratch_cnn", optimizer=optimizer, scheduler=scheduler,
                           **META)
    raw = torch.load(path, weights_only=True)
    assert (raw["optimizer_class"], raw["scheduler_class"]) == ("AdamW", "StepLR")
    assert raw["contents_sha256"] == checkpoints.contents_checksum(raw)  # tuples, ints, tensors hash alike
    raw["optimizer_state"]["param_groups"][0]["betas"] = (0.8, 0.98)
    assert raw["contents_sha256"] != checkpoints.contents_checksum(raw)
