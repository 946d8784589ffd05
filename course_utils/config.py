"""The course's settings in one place: lessons, target signs, profiles and their defaults.

Every number a lesson uses by default (epochs, image size, how much synthetic data) lives here, so that a
notebook's ``parameters`` cell can leave a value at ``None`` and get the profile's default. An instructor
overrides any of them with papermill (``course run -p EPOCHS 5``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: The lessons, in teaching order. The same file name (plus ``.ipynb``) is used in ``solutions/`` and
#: ``notebooks/``.
LESSONS: tuple[str, ...] = (
    "01_cnn_from_scratch",
    "02_feature_extraction",
    "03_fine_tuning",
    "04_unknown_class",
)

#: Where the course lives; the Colab and Kaggle set-up cell installs the package from here.
REPOSITORY_URL = "https://github.com/transfer-learning-course/transfer-learning-course"

#: The four traffic signs the classifier learns (as in the GTSRB tutorial); every other sign type is
#: "unknown" in lesson 4.
TARGET_SIGNS: tuple[str, ...] = ("priority_road", "give_way", "stop", "no_entry")

#: Name of the extra class of lesson 4.
UNKNOWN_CLASS = "unknown"

PROFILES: tuple[str, ...] = ("full", "offline", "smoke")

#: Defaults per profile. ``None`` in a notebook parameter means "take it from here".
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "full": {
        "dataset": "gtsrb",
        "arch": "resnet18",
        "image_size": 224,
        "batch_size": 64,
        "epochs": 10,
        "synthetic_tracks_per_class": 30,
        "synthetic_frames_per_track": 10,
        "val_fraction": 0.15,
        "test_fraction": 0.15,
    },
    "offline": {
        "dataset": "synthetic-signs",
        "arch": "efficientnet_lite0",
        "image_size": 96,
        "batch_size": 64,
        "epochs": 6,
        # Many tracks, most of them for validation and testing: training keeps about 16 tracks per sign (a
        # small-data lesson), while 16 test tracks per sign give the verdicts intervals narrow enough to decide
        # them. Test and validation images only pass forwards through a network, so they cost little.
        "synthetic_tracks_per_class": 40,
        "synthetic_frames_per_track": 6,
        "val_fraction": 0.2,
        "test_fraction": 0.4,
    },
    "smoke": {
        "dataset": "synthetic-signs",
        "arch": "efficientnet_lite0",
        "image_size": 64,
        "batch_size": 16,
        "epochs": 1,
        "synthetic_tracks_per_class": 4,
        "synthetic_frames_per_track": 3,
        "val_fraction": 0.15,
        "test_fraction": 0.15,
    },
}


#: Per-lesson overrides of :data:`PROFILE_DEFAULTS` (for example more epochs where a lesson trains longer).
#: Each lesson's author edits only that lesson's entry.
LESSON_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {lesson: {} for lesson in LESSONS}
# Lesson 1's CNN sees 64x64 images in every profile: sign photos are mostly smaller than that (upscaling adds no
# detail), and its three blocks see a third of a 64-pixel image but only a tiny patch of a 224-pixel one.
# Smaller batches give it more weight updates per epoch; smoke needs 2 epochs (one by hand, one with fit).
LESSON_DEFAULTS["01_cnn_from_scratch"] = {"full": {"image_size": 64, "epochs": 15},
                                          "offline": {"image_size": 64, "batch_size": 32, "epochs": 10},
                                          "smoke": {"image_size": 64, "epochs": 2}}
# Lesson 2 trains only a linear head on cached features: epochs cost a fraction of a second each.
LESSON_DEFAULTS["02_feature_extraction"] = {"full": {"epochs": 30}, "offline": {"epochs": 30},
                                            "smoke": {"epochs": 3}}
# Lesson 3 fine-tunes: every epoch runs the backbone forwards and backwards, so offline uses 64-pixel images
# and few epochs to stay at a few CPU minutes; "feature_epochs" trains its feature-extraction baseline head.
LESSON_DEFAULTS["03_fine_tuning"] = {"full": {"epochs": 5, "feature_epochs": 30},
                                     "offline": {"image_size": 64, "batch_size": 32, "epochs": 6,
                                                 "feature_epochs": 30},
                                     "smoke": {"epochs": 1, "feature_epochs": 2}}
# Lesson 4 trains two linear heads (four classes; four plus "unknown") on cached features, like lesson 2.
LESSON_DEFAULTS["04_unknown_class"] = {"full": {"epochs": 30}, "offline": {"epochs": 30},
                                       "smoke": {"epochs": 3}}


def profile_defaults(profile: str) -> dict[str, Any]:
    """Return a copy of the default settings of ``profile`` (``full``, ``offline`` or ``smoke``)."""
    if profile not in PROFILE_DEFAULTS:
        raise ValueError(f"Unknown profile {profile!r}: choose one of {', '.join(PROFILES)}.")
    return dict(PROFILE_DEFAULTS[profile])


def resolve(profile: str, lesson: str | None = None, **parameters: Any) -> dict[str, Any]:
    """Merge a notebook's parameters over the defaults of its profile (and lesson).

    Parameters given as ``None`` take the default; names are matched case-insensitively, so a notebook can
    pass ``EPOCHS=EPOCHS``. Returns a dict with lower-case keys.
    """
    settings = profile_defaults(profile)
    if lesson is not None:
        if lesson not in LESSON_DEFAULTS:
            raise ValueError(f"Unknown lesson {lesson!r}: choose one of {', '.join(LESSONS)}.")
        settings.update(LESSON_DEFAULTS[lesson].get(profile, {}))
    for name, value in parameters.items():
        key = name.lower()
        if value is not None or key not in settings:
            settings[key] = value
    return settings


def default_data_dir() -> Path:
    """Where data sets are downloaded or generated.

    ``$COURSE_DATA_DIR`` when set, else ``~/.cache/transfer-course/data``.

    On Kaggle the working folder is used, because the home folder does not persist there.
    """
    if os.environ.get("COURSE_DATA_DIR"):
        return Path(os.environ["COURSE_DATA_DIR"]).expanduser()
    if Path("/kaggle/working").is_dir():
        return Path("/kaggle/working/data")
    return Path.home() / ".cache" / "transfer-course" / "data"


def default_output_dir(lesson: str) -> Path:
    """Where a lesson writes its results: ``$COURSE_OUTPUT_DIR/<lesson>``, else ``outputs/<lesson>``."""
    base = os.environ.get("COURSE_OUTPUT_DIR")
    if base:
        return Path(base).expanduser() / lesson
    if Path("/kaggle/working").is_dir():
        return Path("/kaggle/working/outputs") / lesson
    return Path("outputs") / lesson
