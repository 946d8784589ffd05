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


def test_a_folder_whose_proof_is_gone_by_the_replacement_is_kept(tmp_path):
    """The manifest is read again just before the old folder is removed: a folder that is no longer the course's
    (its manifest replaced by a person's file while the new one was written) is kept, and so is nothing half-made."""
    folder = build_folder_once(tmp_path / "abc", {"seed": 0}, writer([]), verbose=False)

    def write_while_someone_edits(partial):
        (folder / MANIFEST_NAME).write_text("my notes, not JSON")
        return writer([])(partial)

    with pytest.raises(FileExistsError, match="abc exists but is not a folder the course made .no readable"):
        build_folder_once(folder, {"seed": 1}, write_while_someone_edits, verbose=False)
    assert (folder / MANIFEST_NAME).read_text() == "my notes, not JSON" and (folder / "image.png").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == [".abc.lock", "abc"]  # no partial left


def test_a_link_in_the_courses_place_is_refused_before_anything_is_drawn(tmp_path):
    target = build_folder_once(tmp_path / "real", {"seed": 0}, writer([]), verbose=False)
    link = tmp_path / "abc"
    link.symlink_to(target, target_is_directory=True)
    calls: list = []
    with pytest.raises(FileExistsError, match="abc exists but is not a folder the course made .a link."):
        build_folder_once(link, {"seed": 1}, writer(calls), verbose=False)
    assert calls == [] and link.is_symlink() and read_manifest(target)["settings"] == {"seed": 0}
