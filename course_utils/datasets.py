"""Finding images and their labels: synthetic signs, GTSRB, Oxford-IIIT Pet, or any folder you bring.

Every data set ends up as a list of :class:`Sample` (path, label, group) plus a list of class names, and
:func:`load_dataset` turns it into a train/val/test :class:`~course_utils.splits.Split`::

    split = load_dataset("synthetic-signs", data_dir, profile="offline")
    split = load_dataset("/path/to/my_photos", data_dir, profile="full")   # class sub-folders

Real folders are messy. :func:`scan_image_folder` skips what cannot be used (non-images, empty, truncated
or corrupt files, files and sub-folders it may not read) and prints ONE line saying how many, which and why.
Hidden system files (``.DS_Store``, ``._photo.jpg``, ``Thumbs.db``) are ignored silently: they are never
images a user meant to add. A system folder (``/``, ``/usr``, the home folder itself) is refused as a data set.
How files are checked, so that a large folder is scanned without decoding most of its images:
the header is read for every file; PNG files are verified chunk by chunk (checksums, no decoding);
a JPEG must end with its end-of-image marker (a truncated download does not); other formats are decoded.
"""

from __future__ import annotations

import os
import re
import urllib.error
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from course_utils import config, messages
from course_utils.dataset_registry import DATASET_REGISTRY, DatasetEntry
from course_utils.files import display_path, is_system_folder, is_utf8_name, printable_name
from course_utils.image_files import IMAGE_EXTENSIONS, UNREADABLE, image_problem, is_hidden
from course_utils.samples import DatasetError, DownloadError, Sample, group_of, track_of
from course_utils.splits import Split, select_classes, split_samples

__all__ = ["GTSRB_CLASSES", "NOT_UTF8", "UNREADABLE_FOLDER", "files_under", "find_split_folders", "gtsrb_samples",
           "list_unlabeled_images", "load_dataset", "oxford_pet_samples", "scan_files", "scan_image_folder"]


def _report_skipped(root: Path, skipped: list[tuple[Path, str]], total: int, empty_classes: list[str]
                    ) -> None:
    """Print the ONE summary line about what was skipped (nothing when nothing was)."""
    if not skipped and not empty_classes:
        return
    parts = []
    if skipped:
        by_reason: dict[str, list[str]] = {}
        for path, reason in skipped:
            by_reason.setdefault(reason, []).append(_relative(path, root))
        reasons = []
        for reason, names in by_reason.items():
            shown = ", ".join(names[:3]) + (f", +{len(names) - 3} more" if len(names) > 3 else "")
            reasons.append(f"{len(names)} {reason} ({shown})")
        parts.append(f"skipped {len(skipped)} of {total} files in {display_path(root)}: " + "; ".join(reasons))
    if empty_classes:
        parts.append(f"ignored {len(empty_classes)} class folder(s) without usable images: "
                     f"{', '.join(empty_classes)}")
    line = "; ".join(parts)
    messages.warn(f"⚠️ {line[0].upper()}{line[1:]}.")


def _relative(path: Path, root: Path) -> str:
    try:
        return printable_name(path.relative_to(root).as_posix())
    except ValueError:
        return printable_name(path.name)


#: Why a file or folder with a name that is not UTF-8 is skipped.
NOT_UTF8 = "name not valid UTF-8 (rename it)"
#: Why a sub-folder the course may not list is skipped (its images are not seen).
UNREADABLE_FOLDER = "folder(s) " + UNREADABLE


def _is_dir(path: Path) -> bool:
    """``Path.is_dir`` that answers False for a name the file system cannot take (instead of raising)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _require_folder(root: Path) -> None:
    """Raise :class:`DatasetError` when ``root`` is missing, a regular file, a system folder or unreadable."""
    if root.is_dir():
        if is_system_folder(root):
            raise DatasetError(f"The data folder {printable_name(root)} is a system folder (or the home folder "
                               "itself), not a data set: scanning it would walk the whole file system; pass the "
                               "folder that holds your class folders, e.g. ~/photos/pets.")
        try:
            with os.scandir(root):
                pass
        except PermissionError:
            raise DatasetError(f"The data folder {printable_name(root)} cannot be read (permission denied): give "
                               "yourself read permission (chmod u+rx) or copy the images to a folder of yours."
                               ) from None
        return
    if root.exists():
        raise DatasetError(f"The data folder {root} is a file, not a folder: pass the folder that holds the "
                           "class folders (unpack an archive first).")
    raise DatasetError(f"The data folder {root} does not exist: check the path you passed.")


def _class_folders(root: Path, verbose: bool = True) -> tuple[list[str], list[str]]:
    """Names of the class folders of ``root`` and the folders ignored (not UTF-8, links back inside).

    A folder that is a link leading back inside the data set (to ``root`` itself, or to another class) would
    make a class holding copies of other images: it is ignored with a notice.
    """
    _require_folder(root)
    names, ignored = [], []
    inside = root.resolve()
    for path in sorted(root.iterdir()):
        if is_hidden(path.name) or not _is_dir(path):
            continue
        if not is_utf8_name(path.name):
            ignored.append(f"{printable_name(path.name)} ({NOT_UTF8})")
            continue
        if path.is_symlink():
            target = path.resolve()
            if target == inside or inside in target.parents or target in inside.parents:
                ignored.append(f"{path.name} (a link back into the data set, to {printable_name(target)})")
                continue
        names.append(path.name)
    if ignored and verbose:
        messages.say(f"ℹ️ Ignored {len(ignored)} folder(s) in {display_path(root)}: {'; '.join(ignored)}.")
    if verbose:
        _report_capitalisation(root, names)
    return names, ignored


def _report_capitalisation(root: Path, names: Sequence[str]) -> None:
    """One notice when class folders differ only in capitalisation (``Cat`` and ``cat``): they become two classes."""
    by_lower: dict[str, list[str]] = {}
    for name in names:
        by_lower.setdefault(name.casefold(), []).append(name)
    twins = [" and ".join(group) for group in by_lower.values() if len(group) > 1]
    if twins:
        messages.say(
            f"ℹ️ Class folders in {display_path(root)} differ only in capitalisation ({'; '.join(twins)}): each "
            "is trained as a class of its own; merge them into one folder if they are the same class.")


def scan_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """Every non-hidden file under ``folder`` (recursively, sorted) and every entry that could not be read.

    A sub-folder the course may not list (or an entry whose type it may not read) goes to the second list
    instead of stopping the walk with a ``PermissionError``. Links to files count as files; links to folders
    below ``folder`` are not followed, so a link cannot make the walk go round in circles.
    """
    files: list[Path] = []
    unreadable: list[Path] = []
    waiting = [Path(folder)]
    while waiting:
        current = waiting.pop()
        try:
            with os.scandir(current) as listing:
                entries = list(listing)
        except PermissionError:
            unreadable.append(current)
            continue
        except OSError:  # removed or replaced while the walk ran: nothing in it to see
            continue
        for entry in entries:
            if is_hidden(entry.name):
                continue
            path = current / entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    waiting.append(path)
                elif entry.is_file():
                    files.append(path)
            except PermissionError:
                unreadable.append(path)
            except OSError:  # a broken link, or one that leads round in a circle: not a file
                continue
    return sorted(files), sorted(unreadable)


def files_under(folder: Path) -> list[Path]:
    """Every non-hidden file under ``folder`` (recursively), sorted: what a scan looks at, usable or not."""
    return scan_files(folder)[0]


def _unreadable_entries(unreadable: list[Path]) -> list[tuple[Path, str]]:
    """The entries :func:`scan_files` could not read, each with why (for the summary line)."""
    return [(path, UNREADABLE_FOLDER if _is_dir(path) else UNREADABLE) for path in unreadable]


# ------------------------------------------------------------ folders
def _scan(root: Path, classes: Sequence[str] | None, check_files: bool, verbose: bool = True):
    """Samples of the class sub-folders of ``root`` (empty classes dropped) and what was skipped."""
    _require_folder(root)
    folders, _ = _class_folders(root, verbose)
    if classes is None:
        classes = folders
    else:
        missing = [name for name in classes if name not in folders]
        if missing:
            raise DatasetError(f"No folder for class(es) {', '.join(missing)} in {root}: "
                               f"the class folders there are {', '.join(folders) or 'none'}.")
    samples, skipped, empty, total = [], [], [], 0
    kept: list[str] = []
    for name in classes:
        files, unreadable = scan_files(root / name)
        skipped += _unreadable_entries(unreadable)
        total += len(files) + len(unreadable)
        good = []
        for path in files:
            if not is_utf8_name(path.relative_to(root / name)):
                skipped.append((path, NOT_UTF8))
                continue
            problem = image_problem(path) if check_files else (
                None if path.suffix.lower() in IMAGE_EXTENSIONS else "not an image file")
            if problem:
                skipped.append((path, problem))
            else:
                good.append(path)
        if not good:
            empty.append(name)
            continue
        samples += [Sample(path, len(kept), group_of(path, root / name, name)) for path in good]
        kept.append(name)
    return samples, kept, skipped, empty, total


def _no_classes_error(root: Path, empty: Sequence[str] = (), unusable: int = 0) -> DatasetError:
    if empty and unusable:
        return DatasetError(f"None of the {unusable} file(s) in the class folders of {root} "
                            f"({', '.join(printable_name(name) for name in empty[:5])}"
                            f"{', ...' if len(empty) > 5 else ''}) is a usable image (see the line above for "
                            "why): replace them with readable .jpg or .png files.")
    loose = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    hint = (f" It holds {len(loose)} image file(s) directly: to predict unlabeled images use "
            "list_unlabeled_images()." if loose else "")
    return DatasetError(f"No class folders with images in {root}: put each class's images in its own "
                        f"sub-folder, e.g. {root / 'cat' / '001.jpg'} and {root / 'dog' / '002.jpg'}.{hint}")


def scan_image_folder(root: str | Path, *, classes: Sequence[str] | None = None, verbose: bool = True,
                      check_files: bool = True) -> tuple[list[Sample], list[str]]:
    """List the images of a folder of class sub-folders (``root/<class>/<image>``) as samples.

    ``classes`` picks sub-folders (in that order; default: all, sorted by name). Unusable files are skipped
    and reported in one printed line; empty class folders are dropped. Raises :class:`DatasetError` when
    fewer than two classes with images remain. ``check_files=False`` skips the per-file check (for folders
    the course generated itself).
    """
    root = Path(root)
    samples, kept, skipped, empty, total = _scan(root, classes, check_files, verbose)
    if verbose:
        _report_skipped(root, skipped, total, empty)
    if classes is not None and empty:
        raise DatasetError(f"The class folder(s) {', '.join(empty)} in {root} hold no usable images: "
                           "add images or leave the class out of `classes`.")
    _require_two_classes(root, kept, empty, len(skipped))
    return samples, kept


def _require_two_classes(root: Path, kept: list[str], empty: Sequence[str] = (), unusable: int = 0) -> None:
    if not kept:
        raise _no_classes_error(root, empty, unusable)
    if len(kept) == 1:
        raise DatasetError(f"Only one class ({kept[0]!r}) has images in {root}: a classifier needs at least "
                           "two; add a sub-folder of images for every other class.")


_SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                "test": "test", "testing": "test"}


def find_split_folders(root: str | Path) -> dict[str, Path] | None:
    """The ``train``/``val``/``test`` sub-folders of an already split data set, or None when it is not split.

    Names are matched in any capitalisation; ``valid`` and ``validation`` count as ``val``. A ``train``
    folder is required; ``val`` and ``test`` are optional.
    """
    root = Path(root)
    if not root.is_dir():
        return None
    try:
        entries = sorted(root.iterdir())
    except PermissionError:
        return None  # an unreadable folder: the scan that follows says so
    found = {_SPLIT_NAMES[p.name.lower()]: p for p in entries if _is_dir(p) and p.name.lower() in _SPLIT_NAMES}
    return found if "train" in found else None


def list_unlabeled_images(folder: str | Path, *, verbose: bool = True) -> list[Path]:
    """All usable images in ``folder`` and its sub-folders (for predicting into a CSV), sorted by path."""
    folder = Path(folder)
    _require_folder(folder)
    files, unreadable = scan_files(folder)
    good, skipped = [], _unreadable_entries(unreadable)
    for path in files:
        problem = image_problem(path)
        (skipped.append((path, problem)) if problem else good.append(path))
    if verbose:
        _report_skipped(folder, skipped, len(files) + len(unreadable), [])
    if not good:
        raise DatasetError(f"No usable images in {folder}: put .jpg or .png files there.")
    return good


# ------------------------------------------------------------ GTSRB, pets
#: GTSRB's 43 classes by class id, as short names. The four target signs: 12 priority_road,
#: 13 give_way ("yield"), 14 stop, 17 no_entry.
GTSRB_CLASSES: list[str] = [
    "speed_limit_20", "speed_limit_30", "speed_limit_50", "speed_limit_60", "speed_limit_70",
    "speed_limit_80", "end_of_speed_limit_80", "speed_limit_100", "speed_limit_120", "no_passing",
    "no_passing_over_3_5_tons", "right_of_way", "priority_road", "give_way", "stop",
    "no_vehicles", "no_vehicles_over_3_5_tons", "no_entry", "general_caution", "dangerous_curve_left",
    "dangerous_curve_right", "double_curve", "bumpy_road", "slippery_road", "road_narrows_right",
    "road_work", "traffic_signals", "pedestrians", "children_crossing", "bicycles_crossing",
    "ice_or_snow", "wild_animals_crossing", "end_of_limits", "turn_right_ahead", "turn_left_ahead",
    "ahead_only", "straight_or_right", "straight_or_left", "keep_right", "keep_left",
    "roundabout", "end_of_no_passing", "end_of_no_passing_over_3_5_tons",
]


def _torchvision_dataset(dataset_class, title: str, root: Path, download: bool, **options):
    """Build a torchvision data set; a failed download or missing copy becomes a one-sentence error."""
    try:
        return dataset_class(str(root), download=download, **options)
    except (urllib.error.URLError, OSError, RuntimeError) as error:
        if download:
            raise DownloadError(
                f"Could not download {title} into {root} ({type(error).__name__}: is there a network "
                "connection?): connect to the internet, or run the course in the offline profile "
                "(PROFILE = 'offline' or COURSE_PROFILE=offline), which needs no download.") from error
        raise DatasetError(
            f"{title} is not in {root}: download it first (download=True, as the 'full' profile does), "
            "or run the course in the offline profile, which needs no download.") from error


def gtsrb_samples(root: str | Path, *, download: bool = False
                  ) -> tuple[list[Sample], list[Sample], list[str]]:
    """GTSRB's training and test images (from ``torchvision.datasets.GTSRB``) and its 43 class names.

    Training files are named ``<track>_<frame>.ppm``; every frame of a track gets the group
    ``"<class name>/<track>"`` so a split never puts one physical sign on both sides. Test images come
    without tracks, so each is its own group. The data live in ``root/gtsrb`` (torchvision's layout).
    """
    from torchvision.datasets import GTSRB

    root = Path(root)
    train_set = _torchvision_dataset(GTSRB, "GTSRB", root, download, split="train")
    test_set = _torchvision_dataset(GTSRB, "GTSRB", root, download, split="test")
    train = []
    for path, _ in train_set._samples:
        path = Path(path)
        class_id = int(path.parent.name)  # folder 00014 holds class 14 (also in a partial copy)
        train.append(Sample(path, class_id, f"{GTSRB_CLASSES[class_id]}/{track_of(path) or path.stem}"))
    test = [Sample(Path(path), int(class_id), Path(path).stem) for path, class_id in test_set._samples]
    return train, test, list(GTSRB_CLASSES)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def oxford_pet_samples(root: str | Path, *, target: str = "breed", download: bool = False
                       ) -> tuple[list[Sample], list[Sample], list[str]]:
    """Oxford-IIIT Pet's trainval and test images (``torchvision.datasets.OxfordIIITPet``) and class names.

    ``target="breed"`` gives 37 breeds (``"american_bulldog"``, ...); ``"binary-category"`` gives
    ``["cat", "dog"]``. Each photo is its own group. The data live in ``root/oxford-iiit-pet``.
    """
    from torchvision.datasets import OxfordIIITPet

    target_types = {"breed": "category", "binary-category": "binary-category"}
    if target not in target_types:
        raise ValueError(f"Unknown target {target!r}: use 'breed' or 'binary-category'.")
    parts = []
    for split in ("trainval", "test"):
        dataset = _torchvision_dataset(OxfordIIITPet, "Oxford-IIIT Pet", Path(root), download,
                                       split=split, target_types=target_types[target])
        labels = dataset._labels if target == "breed" else dataset._bin_labels
        parts.append([Sample(Path(path), int(label), Path(path).stem)
                      for path, label in zip(dataset._images, labels, strict=True)])
        if split == "trainval":
            classes = [_slug(name) for name in dataset.classes] if target == "breed" else ["cat", "dog"]
    return parts[0], parts[1], classes


# ------------------------------------------------------------ one entry point


def load_dataset(name: str | Path, data_dir: str | Path | None = None, *, profile: str, seed: int = 0,
                 classes: Sequence[str] | str | None = None, val_fraction: float | None = None,
                 test_fraction: float | None = None, group_aware: bool = True, tracks_per_class: int | None = None,
                 frames_per_track: int | None = None, download: bool | None = None, verbose: bool = True):
    """Load a data set by name (or folder path) and split it into train/val/test.

    ``name`` is one of :data:`course_utils.dataset_registry.DATASET_REGISTRY` (``"synthetic-signs"``,
    ``"gtsrb"``, ``"pets"`` (37 breeds), ``"pets-binary"`` (cat/dog), ``"sample-folder"``) or
    the path of your own folder: class sub-folders (split here, stratified), or already split into
    train/val/test sub-folders (any capitalisation). ``classes``: None gives the course's four target signs
    for the sign data sets and every class otherwise; ``"all"`` gives every class; a list picks classes.
    Data sets that bring their own test set (GTSRB, pets) keep it and carve validation from training.
    Downloads happen only when ``download`` is True (default: only in the ``full`` profile).
    ``val_fraction``/``test_fraction`` default to the profile's (``offline`` keeps many tracks for testing).
    ``data_dir`` defaults to :func:`course_utils.config.default_data_dir`.
    """
    defaults = config.profile_defaults(profile)  # also rejects an unknown profile
    request = _Request(
        classes=classes, seed=seed, group_aware=group_aware,
        val_fraction=defaults.get("val_fraction", 0.15) if val_fraction is None else val_fraction,
        test_fraction=defaults.get("test_fraction", 0.15) if test_fraction is None else test_fraction,
        tracks_per_class=tracks_per_class or defaults["synthetic_tracks_per_class"],
        frames_per_track=frames_per_track or defaults["synthetic_frames_per_track"],
        download=profile == "full" if download is None else download, verbose=verbose)
    data_dir = Path(data_dir) if data_dir is not None else config.default_data_dir()
    if isinstance(name, str) and name in DATASET_REGISTRY:
        entry = DATASET_REGISTRY[name]
        loader = globals()[entry.loader]  # the function of this module the registry names for it
        return loader(entry, data_dir, request)
    if Path(name).is_dir():
        _require_folder(Path(name))
        return _folder_dataset(Path(name), request)
    if Path(name).exists():
        _require_folder(Path(name))
    raise ValueError(f"Unknown data set {str(name)!r}: use one of {', '.join(config.DATASETS)}, "
                     "or the path of an existing folder of images.")


@dataclass(frozen=True)
class _Request:
    """What :func:`load_dataset` was asked for (the profile's defaults filled in), as each loader reads it."""

    classes: Sequence[str] | str | None
    seed: int
    group_aware: bool
    val_fraction: float
    test_fraction: float
    tracks_per_class: int
    frames_per_track: int
    download: bool
    verbose: bool


def load_synthetic_signs(entry: DatasetEntry, data_dir: Path, request: _Request) -> Split:
    """The synthetic signs (drawn once under ``data_dir``), the four target signs unless ``classes`` says."""
    from course_utils import synthetic

    folder = synthetic.generate_signs(
        data_dir / entry.folder, classes=synthetic.ALL_SIGNS, tracks_per_class=request.tracks_per_class,
        frames_per_track=request.frames_per_track, seed=request.seed, verbose=request.verbose)
    samples, names = scan_image_folder(folder, classes=synthetic.ALL_SIGNS, check_files=False)
    samples, names = _choose(samples, names, request.classes, config.TARGET_SIGNS)
    return split_samples(samples, names, val_fraction=request.val_fraction, test_fraction=request.test_fraction,
                         seed=request.seed, group_aware=request.group_aware)


def load_gtsrb(entry: DatasetEntry, data_dir: Path, request: _Request) -> Split:
    """GTSRB with its own test set (the four target signs unless ``classes`` says)."""
    train, test, names = gtsrb_samples(data_dir, download=request.download)
    return _split_keeping_test(train, test, names, request, config.TARGET_SIGNS)


def load_oxford_pet(entry: DatasetEntry, data_dir: Path, request: _Request) -> Split:
    """Oxford-IIIT Pet with its own test set, labelled by ``entry.target`` (breeds, or cat and dog)."""
    train, test, names = oxford_pet_samples(data_dir, target=entry.target, download=request.download)
    return _split_keeping_test(train, test, names, request, None)


def load_sample_folder(entry: DatasetEntry, data_dir: Path, request: _Request) -> Split:
    """Lesson 5's practice folder (drawn once under ``data_dir``), split as any folder you bring."""
    from course_utils.sample_folders import make_sample_folder

    folder = make_sample_folder(data_dir / entry.folder, seed=request.seed, verbose=request.verbose).labeled
    _require_folder(folder)
    return _folder_dataset(folder, request)


def _split_keeping_test(train: list[Sample], test: list[Sample], names: list[str], request: _Request,
                        default: Sequence[str] | None) -> Split:
    """Carve validation from ``train`` and keep the data set's own ``test`` (both narrowed to the classes)."""
    train, chosen = _choose(train, names, request.classes, default)
    test, _ = _choose(test, names, request.classes, default)
    split = split_samples(train, chosen, val_fraction=request.val_fraction, test_fraction=0.0, seed=request.seed,
                          group_aware=request.group_aware)
    split.test = test
    return split


def _choose(samples: list[Sample], names: list[str], wanted, default: Sequence[str] | None):
    """Apply the ``classes`` argument of :func:`load_dataset`."""
    if wanted is None:
        wanted = default
    if wanted is None or (isinstance(wanted, str) and wanted == "all"):
        return samples, list(names)
    if isinstance(wanted, str):
        wanted = [wanted]
    return select_classes(samples, names, list(wanted))


def _folder_dataset(root: Path, request: _Request):
    """Split a user folder: class sub-folders, or train/val/test sub-folders of class sub-folders."""
    classes, val_fraction, test_fraction, verbose = (request.classes, request.val_fraction, request.test_fraction,
                                                     request.verbose)
    options = {"seed": request.seed, "group_aware": request.group_aware}
    parts = find_split_folders(root)
    try:
        if parts is None:
            samples, names = scan_image_folder(root, verbose=verbose)
            samples, names = _choose(samples, names, classes, None)
            return split_samples(samples, names, val_fraction=val_fraction, test_fraction=test_fraction,
                                 **options)
        train, names, skipped, empty, total = _scan(parts["train"], None, True, verbose)
        given: dict[str, list[Sample]] = {}
        for part in ("val", "test"):
            folder = parts.get(part)
            if folder is None:
                continue
            found, _ = _class_folders(folder, verbose)
            if not found:
                if verbose:
                    messages.say(
                        f"ℹ️ {display_path(folder)} has no class folders, so it holds unlabeled images (predict them "
                        f"with list_unlabeled_images); {part} is carved from {display_path(parts['train'])} "
                        "instead.")
                continue
            strangers = [name for name in found if name not in names]
            if strangers:
                raise DatasetError(f"{folder} has class folder(s) {', '.join(strangers)} that "
                                   f"{parts['train']} lacks: every class needs training images; "
                                   "add them to train or remove those folders.")
            lacking = [name for name in names if name not in found]
            if lacking and verbose:
                messages.say(
                    f"ℹ️ {display_path(folder)} has no folder for class(es) {', '.join(lacking)}: the {part} part "
                    f"holds no images of them, so its accuracy says nothing about them; add "
                    f"{display_path(folder)}/<class> folders "
                    "to measure them.")
            part_samples, kept, part_skipped, part_empty, part_total = _scan(folder, found, True, False)
            given[part] = [Sample(s.path, names.index(kept[s.label]), s.group) for s in part_samples]
            skipped, empty, total = skipped + part_skipped, empty + part_empty, total + part_total
        if verbose:
            _report_skipped(root, skipped, total, empty)
        _require_two_classes(parts["train"], names, empty, len(skipped))
        train, chosen = _choose(train, names, classes, None)
        given = {part: _choose(samples, names, classes, None)[0] for part, samples in given.items()}
        for part, samples in given.items():
            if not samples:
                raise DatasetError(f"The {part} folder {parts[part]} holds no images of the chosen classes: "
                                   "add images there, or delete the folder to carve it from train.")
        if "val" in given and "test" in given:
            return Split(chosen, train, given["val"], given["test"])
        if "val" in given:  # carve only a test part from train
            carved = split_samples(train, chosen, val_fraction=test_fraction, test_fraction=0.0, **options)
            return Split(chosen, carved.train, given["val"], carved.val)
        carved = split_samples(train, chosen, val_fraction=val_fraction,
                               test_fraction=0.0 if "test" in given else test_fraction, **options)
        return Split(chosen, carved.train, carved.val, given.get("test", carved.test))
    except DatasetError as error:
        if str(root) in str(error):
            raise
        message = str(error)
        raise DatasetError(f"In {root}: {message[0].lower()}{message[1:]}") from None
