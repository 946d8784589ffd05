"""Damaged checkpoint files: every one raises CheckpointError naming the file (issue 10, item 7)."""

from __future__ import annotations

import pytest
import torch

from course_utils.checkpoints import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    weights_checksum,
)
from course_utils.models import ScratchCNN

META = {"classes": ["a", "b"], "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "input_size": 32}


def saved(tmp_path):
    torch.manual_seed(0)
    model = ScratchCNN(2, channels=(4, 8), dropout=0.1)
    return save_checkpoint(tmp_path / "model.pt", model, arch="scratch_cnn", **META), model


def test_save_stores_a_checksum_of_the_weights_that_load_verifies(tmp_path):
    path, model = saved(tmp_path)
    raw = torch.load(path, weights_only=True)
    assert raw["weights_sha256"] == weights_checksum(model.state_dict())
    assert load_checkpoint(path, ScratchCNN(2, channels=(4, 8), dropout=0.1))["arch"] == "scratch_cnn"


def test_truncated_file_names_the_file(tmp_path):
    path, _ = saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 10])
    with pytest.raises(CheckpointError, match="model.pt.*(damaged|truncated)"):
        read_checkpoint(path)


def test_text_file_names_the_file(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("these are my notes, not weights\n" * 20)
    with pytest.raises(CheckpointError, match="notes.pt"):
        read_checkpoint(path)


def test_missing_metadata_is_named(tmp_path):
    path = tmp_path / "bare.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "version": 1, "model_state": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="bare.pt is damaged: it lacks metadata"):
        read_checkpoint(path)


def test_unknown_format_version_is_refused(tmp_path):
    path, _ = saved(tmp_path)
    raw = torch.load(path, weights_only=True)
    raw["version"] = 99
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="model.pt has checkpoint format version 99"):
        read_checkpoint(path)


def test_flipped_bytes_inside_a_tensor_are_detected(tmp_path):
    path, _ = saved(tmp_path)
    raw = torch.load(path, weights_only=True)
    weight = next(key for key in raw["model_state"] if key.endswith("weight"))
    flat = raw["model_state"][weight].reshape(-1)
    flat[:16] = -flat[:16] + 1.0  # 64 bytes of float32 changed
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="model.pt is damaged: its weights do not match the checksum"):
        load_checkpoint(path, ScratchCNN(2, channels=(4, 8), dropout=0.1))


def test_flipped_bytes_in_the_file_on_disk_are_detected(tmp_path):
    path, _ = saved(tmp_path)
    data = bytearray(path.read_bytes())
    raw = torch.load(path, weights_only=True)
    weight = next(key for key in raw["model_state"] if key.endswith("conv.weight") or key.endswith("weight"))
    needle = raw["model_state"][weight].reshape(-1)[:16].numpy().tobytes()
    start = bytes(data).find(needle)
    assert start > 0
    for offset in range(64):
        data[start + offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.pt"):
        read_checkpoint(path)


def test_saving_below_a_regular_file_says_which_file_is_in_the_way(tmp_path):
    _, model = saved(tmp_path)
    blocker = tmp_path / "runs"
    blocker.write_text("I am a file")
    with pytest.raises(NotADirectoryError, match="runs is a file, not a folder"):
        save_checkpoint(blocker / "sub" / "model.pt", model, arch="scratch_cnn", **META)
    assert blocker.read_text() == "I am a file"
