"""course_utils.cache_folders: a folder the course makes once, whole or not at all, and only its own replaced."""

from __future__ import annotations

import pytest

from course_utils.cache_folders import MANIFEST_NAME, build_folder_once, read_manifest


def writer(calls: list, fail: bool = False):
    def write(partial):
        calls.append(partial)
        (partial / "image.png").write_bytes(b"png")
        if fail:
            raise KeyboardInterrupt  # Ctrl+C half-way
        return {"counts": {"a": 1}}
    return write


def test_a_folder_is_built_once_and_its_manifest_records_the_settings(tmp_path):
    calls: list = []
    folder = build_folder_once(tmp_path / "abc", {"seed": 0}, writer(calls), verbose=False)
    assert build_folder_once(tmp_path / "abc", {"seed": 0}, writer(calls), verbose=False) == folder
    assert len(calls) == 1 and read_manifest(folder) == {"settings": {"seed": 0}, "counts": {"a": 1}}
    assert sorted(path.name for path in folder.iterdir()) == ["image.png", MANIFEST_NAME]  # no marker left


def test_an_interrupted_build_leaves_neither_a_folder_nor_a_partial_one(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        build_folder_once(tmp_path / "abc", {"seed": 0}, writer([], fail=True), verbose=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == [".abc.lock"]


def test_the_courses_folder_with_other_settings_is_replaced_and_a_foreign_one_is_refused(tmp_path):
    build_folder_once(tmp_path / "abc", {"seed": 0}, writer([]), verbose=False)
    folder = build_folder_once(tmp_path / "abc", {"seed": 1}, writer([]), verbose=False)
    assert read_manifest(folder)["settings"] == {"seed": 1}
    theirs = tmp_path / "xyz"
    theirs.mkdir()
    (theirs / "holiday.jpg").write_bytes(b"a photo")
    with pytest.raises(FileExistsError, match="xyz exists but is not a folder the course made"):
        build_folder_once(theirs, {"seed": 0}, writer([]), verbose=False)
    assert [path.name for path in theirs.iterdir()] == ["holiday.jpg"]
