from __future__ import annotations

import random
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils import config, environment
from course_utils.environment import (
    LessonEnvironment,
    choose_profile,
    detect_platform,
    profile_banner,
    seed_everything,
    select_device,
    start_lesson,
)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(environment, "_mps_available", lambda: False)


@pytest.fixture
def local_machine(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)


def test_select_device_falls_back_to_cpu(no_gpu):
    assert select_device() == torch.device("cpu")


def test_select_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(environment, "_mps_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device() == torch.device("cuda")


def test_select_device_forced_cpu_and_missing_gpu_is_an_error(no_gpu):
    assert select_device("cpu") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="CUDA"):
        select_device("cuda")
    with pytest.raises(RuntimeError, match="MPS"):
        select_device("mps")


def test_seed_everything_repeats_all_generators():
    seed_everything(123)
    first = (random.random(), np.random.rand(), torch.rand(3))
    seed_everything(123)
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2])
    seed_everything(124)
    assert random.random() != first[0]


def test_detect_platform_local(local_machine):
    assert detect_platform() == "local"


def test_detect_platform_colab_by_module_or_variable(local_machine, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert detect_platform() == "colab"
    monkeypatch.delitem(sys.modules, "google.colab")
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20250101")
    assert detect_platform() == "colab"


def test_kaggle_has_one_rule_for_platform_and_folders(local_machine, monkeypatch):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.delenv("COURSE_OUTPUT_DIR", raising=False)
    assert detect_platform() == "local" and config.default_output_dir("01") == Path("outputs/01")
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert detect_platform() == "kaggle" and config.on_kaggle()
    assert config.default_data_dir() == Path("/kaggle/temp/data")  # not saved as output (issue 21, kit item 7)
    assert config.default_output_dir("01") == Path("/kaggle/working/outputs/01")


def test_choose_profile_explicit_beats_environment(monkeypatch, no_gpu):
    monkeypatch.setenv("COURSE_PROFILE", "offline")
    assert choose_profile("Smoke") == "smoke"
    assert choose_profile() == "offline"


def test_choose_profile_automatic(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_profile() == "offline"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_profile() == "full"
    monkeypatch.setenv("COURSE_PROFILE", "")
    assert choose_profile() == "full"


def test_choose_profile_rejects_unknown_names_saying_where_from(monkeypatch):
    with pytest.raises(ValueError, match="full, offline, smoke") as error:
        choose_profile("fast")
    assert "PROFILE parameter" in str(error.value)
    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    with pytest.raises(ValueError, match="COURSE_PROFILE") as error:
        choose_profile()
    assert "'gpu'" in str(error.value)


def test_profile_banner_is_one_line_saying_how_to_change():
    banner = profile_banner("offline", torch.device("cpu"), "chosen automatically: no CUDA GPU found")
    assert "\n" not in banner
    for words in ("offline", "cpu", "automatically", "PROFILE", "COURSE_PROFILE"):
        assert words in banner


def test_start_lesson_seeds_prints_and_returns(monkeypatch, capsys, no_gpu, local_machine):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    env = start_lesson(seed=7)
    first = torch.rand(2)
    assert isinstance(env, LessonEnvironment)
    assert (env.profile, env.device, env.platform, env.seed) == ("smoke", torch.device("cpu"), "local", 7)
    assert "COURSE_PROFILE environment variable" in env.how_chosen
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and "smoke" in printed[0]
    start_lesson(seed=7)
    assert torch.equal(torch.rand(2), first)


def test_start_lesson_explicit_profile_and_device(no_gpu, capsys):
    env = start_lesson("full", seed=0, device="cpu")
    assert env.profile == "full" and env.device.type == "cpu"
    assert "PROFILE parameter" in capsys.readouterr().out
