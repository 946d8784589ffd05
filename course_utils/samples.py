"""The unit every data set is made of: a :class:`Sample` (path, label, group), and the errors of data sets.

A *group* ties together images that must stay in the same part of a split: the frames of one physical traffic
sign (a *track*). :func:`track_of` reads the track from a GTSRB-style file name (``00012_00003.png``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

__all__ = ["DatasetError", "DownloadError", "Sample", "group_of", "track_of"]

_TRACK_NAME = re.compile(r"^(\d+)_(\d+)$")  # GTSRB naming: <track>_<frame>


class Sample(NamedTuple):
    """One labelled image. ``group`` ties together images that must stay in the same split part
    (the frames of one physical traffic sign, a *track*, e.g. ``"stop/00012"``); else it is unique."""

    path: Path
    label: int
    group: str


class DatasetError(ValueError):
    """The data set cannot be used as it is; the message names the folder and how to fix it."""


class DownloadError(RuntimeError):
    """A data set could not be downloaded (usually: no network)."""


def track_of(path: Path | str) -> str | None:
    """The track number in a GTSRB-style file name (``"00012"`` for ``00012_00003.png``), else None.

    Frames of one track show the same physical sign, so a fair split keeps each track in one part.
    """
    match = _TRACK_NAME.match(Path(path).stem)
    return match.group(1) if match else None


def group_of(path: Path, class_folder: Path, class_name: str) -> str:
    """``"<class>/<track>"`` for GTSRB-style names directly in the class folder, else ``"<class>/<file stem>"``
    (an image without a track is a group of its own)."""
    track = track_of(path)
    if track is not None and path.parent == class_folder:
        return f"{class_name}/{track}"
    return f"{class_name}/{path.relative_to(class_folder).with_suffix('').as_posix()}"
