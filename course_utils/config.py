"""The course's settings in one place: lessons, target signs, profiles and their defaults.

Every number a lesson uses by default (epochs, image size, how much synthetic data) lives here, so that a
notebook's ``parameters`` cell can leave a value at ``None`` and get the profile's default. An instructor
overrides any of them with papermill (``course run -p EPOCHS 5``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from course_utils.dataset_registry import DATASET_REGISTRY

__all__ = ["ARCHITECTURES", "BACKBONE_NAMES", "DATASETS", "SCRATCH_CNN", "IMAGE_SIZE_RANGE", "KAGGLE_SCRATCH",
           "APPENDIX_LESSONS", "KAGGLE_WORKING", "LESSONS", "LESSON_DEFAULTS", "PROFILES",
           "PROFILE_DEFAULTS", "SEED_RANGE", "TARGET_SIGNS", "UNKNOWN_CLASS", "HELD_OUT_SIGNS", "ParameterError",
           "check_parameters", "default_data_dir", "default_output_dir", "on_kaggle", "parameter_problem",
           "profile_defaults", "resolve"]

#: The lessons, in teaching order. The same file name (plus ``.ipynb``) is used in ``solutions/`` and
#: ``notebooks/``.
LESSONS: tuple[str, ...] = (
    "01_cnn_from_scratch",
    "02_feature_extraction",
    "03_fine_tuning",
    "04_unknown_class",
    "05_your_own_images",
    "06_scaling_out",
)

#: The four traffic signs the classifier learns (as in the GTSRB tutorial); every other sign type is
#: "unknown" in lesson 4.
TARGET_SIGNS: tuple[str, ...] = ("priority_road", "give_way", "stop", "no_entry")

#: Name of the extra class of lesson 4.
UNKNOWN_CLASS = "unknown"

#: Lesson 4's held-out sign types: the whole family of round blue "mandatory" signs (a white arrow on blue), kept
#: out of training entirely, so that they test a new *kind* of sign: no target sign and no other sign type is round
#: and blue, so none of them has a trained sibling (the lesson checks this with the backbone's features). The
#: synthetic signs have the first four, GTSRB all eight; the lesson holds out those its data set has.
HELD_OUT_SIGNS: tuple[str, ...] = ("ahead_only", "keep_right", "turn_right_ahead", "roundabout", "turn_left_ahead",
                                   "straight_or_right", "straight_or_left", "keep_left")

PROFILES: tuple[str, ...] = ("full", "offline", "smoke")

#: The data sets known by name (any other DATASET value is the path of a folder): the names of
#: :data:`course_utils.dataset_registry.DATASET_REGISTRY`, where their folders, addresses and loaders are.
DATASETS: tuple[str, ...] = tuple(DATASET_REGISTRY)

#: The ImageNet backbones a lesson's ARCH may name (what the course knows about each:
#: :data:`course_utils.backbones.BACKBONES`, kept in step by a test).
BACKBONE_NAMES: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "efficientnet_lite0")
#: Lesson 1's small network, trained from scratch (:class:`course_utils.models.ScratchCNN`).
SCRATCH_CNN = "scratch_cnn"
#: Every value a lesson's ARCH parameter accepts.
ARCHITECTURES: tuple[str, ...] = (*BACKBONE_NAMES, SCRATCH_CNN)

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
# Lesson 1's CNN sees 64x64 images in every profile, which keeps its training quick on a CPU; most sign photos are
# no larger anyway. Upscaling adds no detail, but it changes how large a sign is next to the filters (the three
# blocks see a third of a 64-pixel image, a small patch of a 224-pixel one), and that can move the accuracy
# either way: lesson 2's Exercise 4 measures it for a pretrained backbone.
# Smaller batches give it more weight updates per epoch; smoke needs 2 epochs (one by hand, one with fit).
LESSON_DEFAULTS["01_cnn_from_scratch"] = {"full": {"image_size": 64, "epochs": 15},
                                          "offline": {"image_size": 64, "batch_size": 32, "epochs": 10},
                                          "smoke": {"image_size": 64, "epochs": 2}}
# Lesson 2 trains only a linear head on cached features: epochs cost a fraction of a second each.
LESSON_DEFAULTS["02_feature_extraction"] = {"full": {"epochs": 30}, "offline": {"epochs": 30},
                                            "smoke": {"epochs": 3}}
# Lesson 3 fine-tunes: every epoch runs the backbone forwards and backwards, so offline runs every recipe on
# 64-pixel images and only the validation winner again at "large_image_size" (lesson 2's 96 pixels); "epochs"
# counts the fine-tuning epochs after the head has trained on cached features ("feature_epochs").
# "min_fine_tune_steps" (lessons 3 and 5): when EPOCHS is left at its default, fine-tuning runs at least this many
# optimizer steps, so more epochs on a folder with few batches per epoch (training.epochs_for_steps). On the
# course's own data an epoch has enough batches (lesson 3: 12, so 3 epochs are 36 steps) and nothing changes; a
# folder of about a hundred images has 3 or 4, and 2 or 3 epochs left fine-tuning up to 20 points below feature
# extraction on a folder of real scans (benchmarks/README.md, "A messy folder of real scans").
MIN_FINE_TUNE_STEPS = 24
LESSON_DEFAULTS["03_fine_tuning"] = {"full": {"epochs": 5, "feature_epochs": 30, "large_image_size": 224,
                                              "min_fine_tune_steps": MIN_FINE_TUNE_STEPS},
                                     "offline": {"image_size": 64, "large_image_size": 96, "batch_size": 32,
                                                 "epochs": 3, "feature_epochs": 30,
                                                 "min_fine_tune_steps": MIN_FINE_TUNE_STEPS},
                                     "smoke": {"epochs": 1, "feature_epochs": 2, "large_image_size": 72}}
# Lesson 4 trains two linear heads (four classes; four plus "unknown") on cached features, like lesson 2.
LESSON_DEFAULTS["04_unknown_class"] = {"full": {"epochs": 30}, "offline": {"epochs": 30},
                                       "smoke": {"epochs": 3}}
# Lesson 5 works on a folder: offline, the messy practice folder the course draws (course_utils.sample_folders);
# full, Oxford-IIIT Pet cat vs dog with a ResNet-50 as in the cats-vs-dogs tutorial. "head_epochs" trains the
# linear and the MLP head on cached features; "epochs" fine-tunes the better one (at least "min_fine_tune_steps"
# steps, see lesson 3: the practice folder has 4 batches per epoch, so 6 epochs).
LESSON_DEFAULTS["05_your_own_images"] = {
    "full": {"dataset": "pets-binary", "arch": "resnet50", "epochs": 3, "head_epochs": 30,
             "min_fine_tune_steps": MIN_FINE_TUNE_STEPS},
    "offline": {"dataset": "sample-folder", "image_size": 64, "batch_size": 32, "epochs": 2, "head_epochs": 40,
                "min_fine_tune_steps": MIN_FINE_TUNE_STEPS},
    "smoke": {"dataset": "sample-folder", "epochs": 1, "head_epochs": 3},
}
# The appendix (lesson 6) runs lesson 5's workflow as a script (`course train`) on the same data and settings; its
# stage 1 trains the head through the frozen body (no cached features), so it keeps its own, shorter head epochs.
LESSON_DEFAULTS["06_scaling_out"] = LESSON_DEFAULTS["05_your_own_images"]

#: Lessons without exercises: appendices that show a tool at work rather than ask for code.
APPENDIX_LESSONS: tuple[str, ...] = ("06_scaling_out",)


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
    check_parameters(settings)
    return settings


#: The image sizes (side of the square, in pixels) the lessons accept: below 32 the backbones' feature maps
#: shrink to nothing and accuracy drops to chance; above 1024 one batch needs gigabytes of memory.
IMAGE_SIZE_RANGE: tuple[int, int] = (32, 1024)

#: Seeds must fit numpy's and torch's generators.
SEED_RANGE: tuple[int, int] = (0, 2**32 - 1)


class ParameterError(ValueError):
    """A lesson parameter with a value of the wrong type or outside its allowed range."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parameter_problem(name: str, value: Any, *, base_dir: str | os.PathLike[str] | None = None) -> str | None:
    """What is wrong with one lesson parameter's value, as one sentence; ``None`` when it is fine.

    ``name`` is matched case-insensitively. ``None`` always means "the default". The rules:

    - ``EPOCHS``, ``FEATURE_EPOCHS``, ``HAND_EPOCHS`` (any ``*EPOCHS``), ``BATCH_SIZE``, ``SYNTHETIC_*``:
      whole numbers >= 1;
    - ``IMAGE_SIZE`` (and any ``*_IMAGE_SIZE``, e.g. lesson 2's ``SECOND_IMAGE_SIZE``): a whole number in
      :data:`IMAGE_SIZE_RANGE` (32..1024);
    - ``SEED``: a whole number in :data:`SEED_RANGE`;
    - ``PROFILE``: one of :data:`PROFILES`; ``ARCH``: one of :data:`ARCHITECTURES`;
    - ``DATASET``: a known data set name or an existing folder (relative paths from ``base_dir``, default
      the current folder), not empty and not a system folder (``/``, ``/usr``, the home folder itself);
    - ``DATA_DIR``/``OUTPUT_DIR``: a path that is not a regular file;
    - ``UNLABELED_DIR``: an existing folder (relative paths from ``base_dir``, default the current folder);
    - ``*_FRACTION`` and ``KEEP_*``: a number in (0, 1]; ``*BLOCKS``: a whole number >= 0;
    - any other number (learning rates, ...): finite and > 0.
    """
    key = name.lower()
    upper = name.upper()
    if value is None:
        return None
    shown = f"{upper}={value!r}"
    if key.endswith("epochs") or key == "batch_size" or key.startswith("synthetic_"):
        if not _is_int(value) or value < 1:
            return f"{shown} is not allowed: use a whole number >= 1."
        return None
    if key.endswith("image_size"):
        low, high = IMAGE_SIZE_RANGE
        if not _is_int(value) or not low <= value <= high:
            return f"{shown} is not allowed: use a whole number of pixels from {low} to {high}."
        return None
    if key == "seed":
        low, high = SEED_RANGE
        if not _is_int(value) or not low <= value <= high:
            return f"{shown} is not allowed: use a whole number from {low} to {high}."
        return None
    if key == "profile":
        if value not in PROFILES:
            return f"{shown} is not allowed: use one of {', '.join(PROFILES)} (or None: automatic)."
        return None
    if key == "arch":
        if not isinstance(value, str) or value not in ARCHITECTURES:
            return f"{shown} is not allowed: use one of {', '.join(ARCHITECTURES)} (or None: the profile's)."
        return None
    if key == "dataset":

        if isinstance(value, (str, os.PathLike)) and str(value) in DATASETS:
            return None
        if isinstance(value, (str, os.PathLike)) and not str(value).strip():
            return f"{shown} is empty: use one of {', '.join(DATASETS)} or the path of a folder of class folders."
        folder = Path(value) if isinstance(value, (str, os.PathLike)) else None
        if folder is not None and not folder.is_absolute() and base_dir is not None:
            folder = Path(base_dir) / folder
        if folder is None or not folder.is_dir():
            where = (f" (looked for {folder.absolute()})"
                     if folder is not None and str(folder.absolute()) != str(value) else "")
            kind = "is a file, not a folder" if folder is not None and folder.exists() else "is unknown"
            return (f"{shown} {kind}{where}: use one of {', '.join(DATASETS)} or the path of an existing "
                    "folder of class folders.")
        from course_utils.files import is_system_folder

        if is_system_folder(folder):
            return (f"{shown} is a system folder (or the home folder itself), not a data set: scanning it would "
                    "walk the whole file system; use the folder that holds your class folders.")
        return None
    if key == "unlabeled_dir":
        if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
            return f"{shown} is not allowed: use the path of a folder of images to predict (or None)."
        folder = Path(value).expanduser()
        if not folder.is_absolute() and base_dir is not None:
            folder = Path(base_dir) / folder
        if not folder.is_dir():
            kind = "is a file, not a folder" if folder.exists() else "does not exist"
            where = f" (looked for {folder.absolute()})" if str(folder.absolute()) != str(value) else ""
            return f"{shown} {kind}{where}: use the path of a folder of images to predict."
        return None
    if key in ("data_dir", "output_dir"):
        if not isinstance(value, (str, os.PathLike)):
            return f"{shown} is not allowed: use the path of a folder."
        path = Path(value).expanduser()
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if blocker == path:
            return f"{shown} is a file, not a folder: use the path of a folder."
        if blocker is not None:
            return f"{shown} lies below {blocker}, which is a file, not a folder: use another folder."
        return None
    if key.endswith("fraction") or key.startswith("keep_"):
        if not _is_number(value) or not 0 < value <= 1:
            return f"{shown} is not allowed: use a number greater than 0 and at most 1."
        return None
    if key.endswith("blocks"):
        if not _is_int(value) or value < 0:
            return f"{shown} is not allowed: use a whole number >= 0."
        return None
    if _is_number(value) and (not math.isfinite(value) or value <= 0):
        return f"{shown} is not allowed: use a number greater than 0."
    return None


def check_parameters(parameters: dict[str, Any], *, base_dir: str | os.PathLike[str] | None = None) -> None:
    """Raise :class:`ParameterError` for the first parameter whose value is not allowed.

    The message is one line naming the parameter, the value and what is allowed (see
    :func:`parameter_problem` for the rules). :func:`resolve` calls it, so a notebook run by hand or by
    papermill checks its parameters as soon as its settings are resolved; ``course run`` calls it before any
    kernel starts.
    """
    for name, value in parameters.items():
        problem = parameter_problem(name, value, base_dir=base_dir)
        if problem:
            raise ParameterError(problem)

#: Kaggle's writable, persisted working folder (the home folder does not persist there).
KAGGLE_WORKING = Path("/kaggle/working")
#: Kaggle's scratch folder for the session ("temporary files ... won't be saved outside of the current session",
#: Kaggle's notebook template): data sets and generated images go here, only results in the working folder.
KAGGLE_SCRATCH = Path("/kaggle/temp")


def on_kaggle() -> bool:
    """Whether this Python runs in a Kaggle notebook (Kaggle sets ``KAGGLE_KERNEL_RUN_TYPE`` in every kernel).

    The course's one rule for "are we on Kaggle": the platform report and the data and output folders use
    it, and the set-up cell (course_tools/setup_cell_code.py), which runs before the package is installed, repeats
    the same condition text.
    """
    return "KAGGLE_KERNEL_RUN_TYPE" in os.environ


def default_data_dir() -> Path:
    """Where data sets are downloaded or generated.

    ``$COURSE_DATA_DIR`` when set, else ``~/.cache/transfer-course/data``.

    On Kaggle, :data:`KAGGLE_SCRATCH` ``/data``: not the working folder, which Kaggle saves as the notebook's
    output (thousands of generated images would land there), and not the home folder, which it resets.
    """
    if os.environ.get("COURSE_DATA_DIR"):
        return Path(os.environ["COURSE_DATA_DIR"]).expanduser()
    if on_kaggle():
        return KAGGLE_SCRATCH / "data"
    return Path.home() / ".cache" / "transfer-course" / "data"


def default_output_dir(lesson: str) -> Path:
    """Where a lesson writes its results: ``$COURSE_OUTPUT_DIR/<lesson>``, else ``outputs/<lesson>``.

    On Kaggle the working folder is used (``/kaggle/working/outputs/<lesson>``).
    """
    base = os.environ.get("COURSE_OUTPUT_DIR")
    if base:
        return Path(base).expanduser() / lesson
    if on_kaggle():
        return KAGGLE_WORKING / "outputs" / lesson
    return Path("outputs") / lesson
