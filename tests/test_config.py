"""Course settings: profile defaults, lesson overrides and notebook parameters."""

from __future__ import annotations

import pytest

from course_utils import config


def test_none_parameters_take_the_profile_default_and_given_ones_win():
    settings = config.resolve("smoke", EPOCHS=None, BATCH_SIZE=7, SEED=3)
    assert settings["epochs"] == config.PROFILE_DEFAULTS["smoke"]["epochs"]
    assert settings["batch_size"] == 7
    assert settings["seed"] == 3


def test_lesson_defaults_override_the_profile(monkeypatch):
    lesson = config.LESSONS[0]
    monkeypatch.setitem(config.LESSON_DEFAULTS, lesson, {"offline": {"epochs": 42}})
    assert config.resolve("offline", lesson)["epochs"] == 42
    assert config.resolve("smoke", lesson)["epochs"] == config.PROFILE_DEFAULTS["smoke"]["epochs"]
    assert config.resolve("offline", lesson, EPOCHS=2)["epochs"] == 2


def test_unknown_profile_and_lesson_name_the_valid_choices():
    with pytest.raises(ValueError, match="full, offline, smoke"):
        config.resolve("fast")
    with pytest.raises(ValueError, match="01_cnn_from_scratch"):
        config.resolve("smoke", "05_nothing")


def test_every_profile_defines_the_same_settings():
    keys = {profile: set(values) for profile, values in config.PROFILE_DEFAULTS.items()}
    assert set(keys) == set(config.PROFILES)
    assert len({frozenset(k) for k in keys.values()}) == 1, keys


def test_output_and_data_folders_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    assert config.default_output_dir("01_cnn_from_scratch") == tmp_path / "out" / "01_cnn_from_scratch"
    assert config.default_data_dir() == tmp_path / "data"


def test_lesson_4_holds_out_a_whole_family_of_real_sign_types():
    from course_utils import datasets, synthetic

    held_out = set(config.HELD_OUT_SIGNS)
    assert held_out <= set(datasets.GTSRB_CLASSES) and not held_out & set(config.TARGET_SIGNS)
    # GTSRB's mandatory family (class ids 33-40) is held out whole, and the synthetic signs' part of it too
    assert held_out == set(datasets.GTSRB_CLASSES[33:41])
    assert held_out & set(synthetic.ALL_SIGNS) == {"ahead_only", "keep_right", "turn_right_ahead", "roundabout"}
