"""`course train` / `torchrun -m course_tools.train`: 2 CPU processes (gloo) on a tiny folder, a killed rank, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import stand_in_pets
from PIL import Image

from course_tools import cli, train
from course_utils import checkpoints
from course_utils.distributed import free_port

REPOSITORY = Path(__file__).resolve().parents[1]
QUICK = ["--profile", "smoke", "--image-size", "32", "--batch-size", "4", "--lr", "0.01"]


def make_folder(root: Path) -> Path:
    """Three classes of twelve 32-pixel images (noisy red, green, blue), each image its own group."""
    rng = np.random.default_rng(0)
    for number, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        folder = root / f"class{number}"
        folder.mkdir(parents=True)
        for index in range(12):
            pixels = np.clip(np.array(colour) + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / f"image{index}.png")
    return root


def torchrun(folder: Path, output: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
            "--master_port", str(free_port()), "-m", "course_tools.train", str(folder), "--output", str(output),
            *QUICK, *options]


def child_environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPOSITORY)}


def leftovers(output: Path) -> list[str]:
    """Temporary files of an atomic write (``.<name>.<random>.tmp``) anywhere under ``output``."""
    return [str(path) for path in output.rglob("*") if path.name.endswith((".tmp", ".partial"))]


def test_two_processes_train_and_rank_zero_writes_one_of_each(tmp_path: Path) -> None:
    folder, output = make_folder(tmp_path / "photos"), tmp_path / "run"
    finished = subprocess.run(torchrun(folder, output, "--epochs", "1", "--head-epochs", "1", "--batchnorm", "train"),
                              cwd=tmp_path, env=child_environment(), capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert sorted(path.name for path in output.iterdir()) == ["classification_report.csv", "metrics.json", "model.pt"]
    assert finished.stdout.count("Test accuracy") == 1  # only rank 0 prints
    # BatchNorm training on CPUs: no SyncBatchNorm there (PyTorch refuses it), and one line says so
    assert finished.stdout.count("each process normalises over its own shard") == 1
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["classes"] == ["class0", "class1", "class2"]
    assert metrics["batchnorm"] == "train"
    assert [row["stage"] for row in metrics["history"]] == [1, 2]
    model, metadata = checkpoints.build_model_from_checkpoint(output / "model.pt")  # one process, no wrapper
    assert metadata["classes"] == ["class0", "class1", "class2"]
    report = (output / "classification_report.csv").read_text().splitlines()
    assert report[0].startswith("class,precision") and any(line.startswith("class2,") for line in report)


def _rank_process(launcher: subprocess.Popen, rank: str) -> int:
    """The process id of torchrun's worker with ``RANK=rank`` (read from /proc: Linux, like the CI)."""
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environment = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if parent == launcher.pid and f"RANK={rank}".encode() in environment:
            return int(entry.name)
    raise AssertionError(f"no worker with RANK={rank} under torchrun (pid {launcher.pid})")


def test_a_killed_rank_ends_the_job_without_half_written_files_and_resume_finishes(tmp_path: Path,
                                                                                   capsys) -> None:
    folder, output = make_folder(tmp_path / "photos"), tmp_path / "run"
    options = ["--epochs", "3", "--head-epochs", "3"]
    launcher = subprocess.Popen(torchrun(folder, output, *options), cwd=tmp_path, env=child_environment(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first_checkpoint = output / train.RESUME_FOLDER / "stage1.pt"
        deadline = time.monotonic() + 400
        while not first_checkpoint.exists() and launcher.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert first_checkpoint.exists(), "the run wrote no per-epoch checkpoint"
        os.kill(_rank_process(launcher, "1"), signal.SIGKILL)
        _, errors = launcher.communicate(timeout=300)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    assert leftovers(output) == []
    assert not (output / "model.pt").exists() and not (output / "metrics.json").exists()
    # the surviving rank says why in one line (after the progress bar's last text), without a traceback
    ours = [line for line in errors.splitlines() if "course_tools.train: rank 0: " in line]
    assert len(ours) == 1, errors[-3000:]
    assert "[rank0]: Traceback" not in errors
    checkpoints.read_checkpoint(first_checkpoint)  # intact: it loads and its checksums hold

    # --resume continues from the checkpoints (here in one process: the global batch is the same)
    assert train.main([str(folder), "--output", str(output), *QUICK, *options, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "Resuming from" in printed
    assert sorted(path.name for path in output.iterdir()) == ["classification_report.csv", "metrics.json", "model.pt"]
    assert len(json.loads((output / "metrics.json").read_text())["history"]) >= 2


def test_missing_master_addr_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    assert train.main([str(tmp_path), "--output", str(tmp_path / "run")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and "MASTER_ADDR" in errors[0] and "torchrun" in errors[0]


@pytest.mark.parametrize("problem", ["missing folder", "output is a file"])
def test_course_train_refuses_bad_paths_in_one_line(tmp_path: Path, capsys, problem: str) -> None:
    folder = tmp_path / "photos"
    output = tmp_path / "run"
    if problem == "output is a file":
        make_folder(folder)
        output.write_text("mine")
    assert cli.main(["train", str(folder), "--output", str(output), *QUICK]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("course train: error: ")
    assert str(folder if problem == "missing folder" else output) in errors[0]
    if problem == "output is a file":
        assert output.read_text() == "mine"


@pytest.mark.parametrize("stage_two_accuracy, kept_stage", [(0.5, 1), (0.9, 2)])
def test_a_stage_two_stuck_at_chance_is_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys,
                                                 stage_two_accuracy: float, kept_stage: int) -> None:
    # fine_tune's rule in `course train` too: here stage 2's best epoch (50%) beats stage 1's (40%) on validation,
    # but 50% is what always answering the most common class scores, so the stage-1 weights stay
    import argparse

    import pandas as pd
    import torch

    from course_utils import models, training

    torch.manual_seed(0)
    model = models.ScratchCNN(2, channels=(4, 8, 8))
    stage_one = {name: value.clone() for name, value in model.state_dict().items()}
    runs = iter([0.4, stage_two_accuracy])

    def canned_fit(network, *arguments, **options):
        accuracy = next(runs)
        if accuracy != 0.4:  # stage 2 changes the weights
            with torch.no_grad():
                for parameter in network.parameters():
                    parameter.add_(1.0)
        history = pd.DataFrame({"epoch": [1], "train_loss": [0.7], "val_loss": [0.69], "val_accuracy": [accuracy]})
        history.attrs["best_epoch"] = 1
        return history

    monkeypatch.setattr(training, "fit", canned_fit)
    args = argparse.Namespace(head_epochs=1, lr=0.01, batchnorm="frozen", resume=False)
    model, history, kept, val_accuracy = train._fine_tune(
        model, [None], None, settings={"epochs": 1}, args=args, device=torch.device("cpu"), metadata={},
        resume_dir=tmp_path, chance=0.5, verbose=True)
    same = all(torch.equal(value, stage_one[name]) for name, value in model.state_dict().items())
    assert (kept, val_accuracy, same) == (kept_stage, stage_two_accuracy if kept_stage == 2 else 0.4, kept_stage == 1)
    notice = capsys.readouterr().out
    assert ("never rose above chance (50.0%" in notice) == (kept_stage == 1)


def test_course_train_reads_a_named_data_set_from_the_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys) -> None:
    """Lesson 6 in the full profile trains on lesson 5's data set there, Oxford-IIIT Pet's cat or dog, by name."""
    monkeypatch.chdir(tmp_path)  # no folder called pets-binary here
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["train", "pets-binary", "--output", str(tmp_path / "missing"), *QUICK]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "Oxford-IIIT Pet is not in" in error[0]  # read, never downloaded

    stand_in_pets(tmp_path / "data")
    assert cli.main(["train", "pets-binary", "--output", str(tmp_path / "run"), *QUICK, "--epochs", "1",
                     "--head-epochs", "1"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["classes"] == ["cat", "dog"] and metrics["dataset"] == "pets-binary"
    assert "validation and 8 test images in 2 classes" in capsys.readouterr().out  # Pet's own test set, kept
