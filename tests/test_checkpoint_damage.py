"""Damaged, crafted or foreign checkpoint files: each raises one CheckpointError naming the file and what is wrong.

Issue 10 item 7 (damage), issue 24 items 8 (metadata), 9 (non-finite weights, training state) and 18 (other kinds of
file).
"""

from __future__ import annotations

import random
import zipfile

import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import checkpoints
from course_utils.checkpoints import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    build_model_from_checkpoint,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    weights_checksum,
)
from course_utils.models import ScratchCNN
from course_utils.training import fit

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


# ------------------------------------------------ issue 24, item 8: metadata checked before anything is built
def rewritten(path, edit):
    """Load the raw checkpoint at ``path``, let ``edit(raw)`` change it, save it back (checksums untouched)."""
    raw = torch.load(path, weights_only=True)
    edit(raw)
    torch.save(raw, path)
    return path


def set_metadata(field, value):
    def edit(raw):
        raw["metadata"][field] = value
    return edit


def set_model_config(**config):
    def edit(raw):
        raw["metadata"]["model_config"].update(config)
    return edit


@pytest.mark.parametrize(("edit", "field"), [
    (set_metadata("classes", ["a"]), "classes"),  # shorter than the head (and than num_classes)
    (set_metadata("classes", "ab"), "classes"),  # a string, not a list of names
    (set_metadata("classes", ["a", 2]), "classes"),
    (set_metadata("classes", ["a", "a"]), "classes"),
    (set_metadata("num_classes", 1), "num_classes"),
    (set_metadata("num_classes", "2"), "num_classes"),
    (set_metadata("std", [0, 0, 0]), "std"),
    (set_metadata("std", [0.5, 0.5]), "std"),
    (set_metadata("mean", [float("nan"), 0.5, 0.5]), "mean"),
    (set_metadata("mean", "0.5"), "mean"),
    (set_metadata("input_size", 40000), "input_size"),
    (set_metadata("input_size", 31), "input_size"),
    (set_metadata("input_size", 32.5), "input_size"),
    (set_metadata("arch", "resnet18; rm -rf ~"), "arch"),
    (set_metadata("arch", ["scratch_cnn"]), "arch"),
    (set_metadata("model_config", [1, 2]), "model_config"),
    (set_model_config(surprise=1), "surprise"),  # an unknown model_config key
    (set_model_config(channels=[4, -8]), "channels"),
    (set_model_config(channels=[4, 10**9]), "channels"),
    (set_model_config(dropout=1.5), "dropout"),
    (set_model_config(in_channels=0), "in_channels"),
])
def test_bad_metadata_is_a_checkpoint_error_naming_the_field(tmp_path, edit, field):
    path = rewritten(saved(tmp_path)[0], edit)
    with pytest.raises(CheckpointError, match=f"model.pt.*{field}") as error:
        build_model_from_checkpoint(path)
    assert "\n" not in str(error.value)


def test_backbone_head_settings_are_checked_before_the_backbone_is_built(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(checkpoints, "load_backbone", lambda *args, **kwargs: built.append(args))
    for config, field in (({"hidden_units": [10**9]}, "hidden_units"), ({"hidden_units": "16"}, "hidden_units"),
                          ({"hidden_units": [16], "channels": [4]}, "channels"), ({"dropout": -0.1}, "dropout")):
        path = rewritten(saved(tmp_path)[0], lambda raw, config=config: raw["metadata"].update(
            arch="resnet18", model_config=config))
        with pytest.raises(CheckpointError, match=f"model.pt.*{field}"):
            build_model_from_checkpoint(path)
    assert built == []


def test_a_class_count_larger_than_the_stored_head_is_refused_before_building(tmp_path, monkeypatch):
    names = [f"class_{index}" for index in range(5000)]

    def craft(raw):  # a crafted file carries a checksum that fits
        raw["metadata"].update(classes=names, num_classes=5000)
        raw["contents_sha256"] = checkpoints.contents_checksum(raw)
    path = rewritten(saved(tmp_path)[0], craft)
    built_on = []
    real = checkpoints.ScratchCNN

    def recording(*args, **kwargs):
        built_on.append(torch.empty(0).device.type)  # "meta" for a dry run that allocates nothing
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoints, "ScratchCNN", recording)
    with pytest.raises(CheckpointError, match="model.pt: its metadata does not fit its weights.*5000 classes"):
        build_model_from_checkpoint(path)
    assert built_on == ["meta"]


def test_metadata_types_are_checked_by_every_load(tmp_path):
    path = rewritten(saved(tmp_path)[0], set_metadata("classes", "abcd"))
    with pytest.raises(CheckpointError, match="model.pt.*classes"):
        load_checkpoint(path, ScratchCNN(2, channels=(4, 8), dropout=0.1))


def test_a_valid_metadata_change_is_caught_by_the_checksum(tmp_path):
    path = rewritten(saved(tmp_path)[0], set_metadata("classes", ["b", "a"]))  # plausible, but not what was saved
    with pytest.raises(CheckpointError, match="model.pt is damaged"):
        read_checkpoint(path)


# --------------------------------------------------------- issue 24, item 9: non-finite weights, resume state
def test_non_finite_weights_are_refused_with_one_line(tmp_path):
    model = ScratchCNN(2, channels=(4, 8), dropout=0.1)
    with torch.no_grad():
        model.classifier.weight[0, 0] = float("nan")
    path = save_checkpoint(tmp_path / "diverged.pt", model, arch="scratch_cnn", **META)
    for load in (read_checkpoint, build_model_from_checkpoint):
        with pytest.raises(CheckpointError, match="diverged.pt.*not finite.*classifier.weight") as error:
            load(path)
        assert "\n" not in str(error.value)


def tiny_run(path, optimizer_class=torch.optim.SGD, epochs=2, resume=False, **optimizer_settings):
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(16, 4), torch.arange(16) % 2)
    model = nn.Linear(4, 2)
    optimizer = optimizer_class(model.parameters(), lr=0.1, **optimizer_settings)
    return fit(model, DataLoader(data, batch_size=8, shuffle=True), DataLoader(data, batch_size=8), epochs=epochs,
               optimizer=optimizer, checkpoint_path=path, resume=resume, verbose=False,
               checkpoint_metadata={"arch": "tiny", "classes": ["a", "b"]})


def drop_contents_checksum(raw):
    raw.pop("contents_sha256", None)


def test_damaged_best_weights_of_a_training_state_are_detected(tmp_path):
    path = tmp_path / "last.pt"
    tiny_run(path, momentum=0.9)

    def damage(raw):
        best = raw["metadata"]["extra"]["training"]["best_state"]
        best["weight"].reshape(-1)[0] += 1.0
    rewritten(path, damage)
    with pytest.raises(CheckpointError, match="last.pt is damaged"):
        tiny_run(path, epochs=3, resume=True, momentum=0.9)


def test_damaged_optimizer_state_is_detected(tmp_path):
    path = tmp_path / "last.pt"
    tiny_run(path, momentum=0.9)

    def damage(raw):
        raw["optimizer_state"]["param_groups"][0]["lr"] = 1e6
    rewritten(path, damage)
    with pytest.raises(CheckpointError, match="last.pt is damaged"):
        tiny_run(path, epochs=3, resume=True, momentum=0.9)


def training_edit(change):
    def edit(raw):
        drop_contents_checksum(raw)  # as in a file written before the checksum covered the training state
        change(raw["metadata"]["extra"]["training"])
    return edit


@pytest.mark.parametrize(("change", "named"), [
    (lambda training: training.pop("rng"), "rng"),
    (lambda training: training.update(best_epoch=99), "best_epoch"),
    (lambda training: training["best_state"].pop("bias"), "best_state"),
    (lambda training: training["best_state"].update(bias=torch.zeros(5)), "best_state"),
    (lambda training: training["best_state"]["bias"].fill_(float("nan")), "best_state"),
    (lambda training: training.update(history="two epochs"), "history"),
    (lambda training: training["history"][0].pop("val_accuracy"), "history"),
    (lambda training: training["rng"].update(torch=torch.zeros(3, dtype=torch.uint8)), "rng"),
    (lambda training: training["rng"]["python"].pop(), "rng"),
    (lambda training: training.update(scaler="none"), "scaler"),
])
def test_a_damaged_training_state_is_a_checkpoint_error(tmp_path, change, named):
    path = tmp_path / "last.pt"
    tiny_run(path, momentum=0.9)
    rewritten(path, training_edit(change))
    with pytest.raises(CheckpointError, match=f"last.pt.*{named}") as error:
        tiny_run(path, epochs=3, resume=True, momentum=0.9)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("forget_class", [False, True])
def test_resuming_with_another_optimizer_class_is_a_checkpoint_error(tmp_path, forget_class):
    path = tmp_path / "last.pt"
    tiny_run(path, torch.optim.Adam)
    if forget_class:  # a file that does not name its optimizer: its hyper-parameters tell
        rewritten(path, lambda raw: (drop_contents_checksum(raw), raw.pop("optimizer_class", None)))
    with pytest.raises(CheckpointError, match="last.pt.*optimizer") as error:
        tiny_run(path, torch.optim.SGD, epochs=3, resume=True, momentum=0.9)
    assert "Adam" in str(error.value) or "momentum" in str(error.value)
    path2 = tmp_path / "sgd.pt"
    tiny_run(path2, torch.optim.SGD, momentum=0.9)
    if forget_class:
        rewritten(path2, lambda raw: (drop_contents_checksum(raw), raw.pop("optimizer_class", None)))
    with pytest.raises(CheckpointError, match="sgd.pt.*optimizer"):
        tiny_run(path2, torch.optim.Adam, epochs=3, resume=True)


def test_an_intact_training_state_still_resumes(tmp_path):
    path = tmp_path / "last.pt"
    tiny_run(path, momentum=0.9)
    history = tiny_run(path, epochs=3, resume=True, momentum=0.9)
    assert history["epoch"].tolist() == [1, 2, 3]


# --------------------------------------------------------- issue 24, item 18: not a checkpoint, not an alarm
@pytest.mark.parametrize(("name", "content"), [
    ("settings.pt", b'{"classes": ["a", "b"], "epochs": 3}\n'),
    ("notes.pt", b"these are my notes, not weights\n" * 20),
    ("random.pt", bytes([0x42]) + random.Random(0).randbytes(4095)),
    ("empty.pt", b""),
])
def test_a_file_of_another_kind_is_not_a_checkpoint_and_no_security_alarm(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"{name} is not a checkpoint") as error:
        read_checkpoint(path)
    assert "pickle" not in str(error.value) and "run code" not in str(error.value)


def test_a_png_image_named_pt_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "photo.pt"
    Image.new("RGB", (8, 8), (200, 30, 30)).save(path, format="PNG")
    with pytest.raises(CheckpointError, match="photo.pt is not a checkpoint.*PNG image") as error:
        build_model_from_checkpoint(path)
    assert "pickle" not in str(error.value)


def test_a_zip_archive_that_is_no_torch_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "archive.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match="archive.pt") as error:
        read_checkpoint(path)
    assert "pickle" not in str(error.value)


def test_a_checkpoint_in_torchs_older_file_format_still_loads(tmp_path):
    path, model = saved(tmp_path)
    raw = torch.load(path, weights_only=True)
    torch.save(raw, path, _use_new_zipfile_serialization=False)  # pickle-based, not a zip archive
    rebuilt, _ = build_model_from_checkpoint(path)
    assert all(torch.equal(value, rebuilt.state_dict()[key]) for key, value in model.state_dict().items())


def test_a_checkpoint_written_before_the_contents_checksum_still_loads_and_resumes(tmp_path):
    path = tmp_path / "last.pt"
    tiny_run(path, momentum=0.9)
    rewritten(path, lambda raw: (drop_contents_checksum(raw), raw.pop("optimizer_class")))
    assert load_checkpoint(path)["epoch"] == 2
    assert tiny_run(path, epochs=3, resume=True, momentum=0.9)["epoch"].tolist() == [1, 2, 3]

