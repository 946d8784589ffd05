"""Samples and tracks: the track number read from GTSRB-style file names, the group of every image."""

from pathlib import Path

from course_utils.samples import group_of, track_of


def test_track_of_reads_gtsrb_style_names_and_nothing_else():
    assert track_of("data/abc/stop/00012_00003.png") == "00012"
    assert track_of(Path("no_entry") / "00000_00029.ppm") == "00000"
    assert track_of("stop/photo.png") is None
    assert track_of("stop/12_photo.png") is None


def test_group_of_a_track_frame_is_its_track_and_of_any_other_image_its_own_name(tmp_path):
    folder = tmp_path / "stop"
    assert group_of(folder / "00012_00003.png", folder, "stop") == "stop/00012"
    assert group_of(folder / "photo.jpg", folder, "stop") == "stop/photo"
    # a track-like name in a sub-folder is not a GTSRB frame: the sub-folder is part of its own group
    assert group_of(folder / "day2" / "00012_00003.png", folder, "stop") == "stop/day2/00012_00003"
