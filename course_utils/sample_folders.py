"""A folder of images "as real ones look", made by the course, for lesson 5 to practise on offline.

A folder someone collected is never as tidy as a benchmark. This one, drawn with the synthetic sign generator
(other sign types than lessons 1-4's four targets), has what real folders have:

- classes of very different sizes, one of them with too few images to learn from;
- odd file and folder names: spaces, capitals, ``.JPG`` and ``.jpeg``, accents, camera names (``IMG_0042.JPG``);
- some classes named GTSRB-style, ``<track>_<frame>.png`` (frames of one physical sign: the split must keep a
  track together), others one photo per sign;
- broken and stray files: a zero-byte image, a truncated JPEG, a text file, a PDF, and hidden system files
  (``.DS_Store``, ``._IMG_0001.JPG``, ``Thumbs.db``);
- a separate folder of unlabeled images to predict (a "test" folder as in a Kaggle competition), with one
  broken file too.

:func:`make_sample_folder` writes it in a few seconds, always the same bytes for the same seed, and finds it
again on the next call (cached by its settings). :func:`copy_unlabeled_images` makes lesson 5's unlabeled folder
when a data set has none (a few test images, without their labels).

The course deletes only what it made: a folder it makes carries a marker file, and a folder of the same name
without that marker (the user's own photos, say) is never deleted or filled.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from PIL import Image

from course_utils import messages, synthetic
from course_utils.cache_folders import build_folder_once
from course_utils.files import display_path, write_json_atomic

__all__ = ["COPY_MARKER", "FOLDER_VERSION", "SAMPLE_CLASSES", "UNLABELED_PER_CLASS", "SampleFolder",
           "copy_unlabeled_images", "make_sample_folder"]

#: Folder name -> (sign type drawn, number of tracks, frames per track, how files are named).
#: "tracks": ``00003_00001.png``; "camera": ``IMG_0042.JPG`` (one frame per sign); "odd": assorted names.
SAMPLE_CLASSES: dict[str, tuple[str, int, int, str]] = {
    "Speed limit 30": ("speed_limit_30", 14, 5, "tracks"),
    "pedestrians": ("pedestrians", 10, 5, "tracks"),
    "roundabout": ("roundabout", 32, 1, "camera"),
    "keep right": ("keep_right", 22, 1, "odd"),
    "road work": ("road_work", 4, 1, "camera"),  # too few to learn from: lesson 5 drops it
}
UNLABELED_PER_CLASS = 5
FOLDER_VERSION = 1
_ODD_NAMES = ("keep right ({}).jpeg", "Kopie von Schild {}.PNG", "schild_rechts_{}.jpg", "Straße {}.png")


class SampleFolder(NamedTuple):
    """Where :func:`make_sample_folder` put things: ``labeled`` holds one sub-folder per class,
    ``unlabeled`` the images to predict."""

    labeled: Path
    unlabeled: Path


def _file_name(style: str, track: int, frame: int, index: int) -> str:
    if style == "tracks":
        return f"{track:05d}_{frame:05d}.png"
    if style == "camera":
        return f"IMG_{4000 + 37 * index:04d}.JPG"
    return _ODD_NAMES[index % len(_ODD_NAMES)].format(index + 1)


def _save(image: Image.Image, path: Path) -> None:
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, format="JPEG", quality=88)
    else:
        image.save(path, format="PNG", compress_level=1)


def _write_folder(target: Path, seed: int) -> dict[str, int]:
    labeled, unlabeled = target / "labeled", target / "unlabeled"
    counts: dict[str, int] = {}
    for class_index, (folder, (sign, tracks, frames, style)) in enumerate(SAMPLE_CLASSES.items()):
        (labeled / folder).mkdir(parents=True)
        index = 0
        for track in range(tracks + UNLABELED_PER_CLASS):
            images = synthetic._track_frames(sign, synthetic._track_rng(seed + 5_000, sign, track), frames)
            if track >= tracks:  # a sign of its own, never seen in training, goes to the unlabeled folder
                unlabeled.mkdir(parents=True, exist_ok=True)
                number = class_index * UNLABELED_PER_CLASS + track - tracks
                _save(images[-1], unlabeled / f"test_{(number * 7919) % 1000:03d}.png")
                continue
            for frame, image in enumerate(images):
                _save(image, labeled / folder / _file_name(style, track, frame, index))
                index += 1
        counts[folder] = index
    # What real folders also hold: broken files, strays and system files.
    some_image = next((labeled / "roundabout").iterdir()).read_bytes()
    (labeled / "roundabout" / "IMG_9999.JPG").write_bytes(some_image[: len(some_image) // 3])  # truncated
    (labeled / "pedestrians" / "00099_00000.png").write_bytes(b"")  # zero bytes: an interrupted copy
    (labeled / "Speed limit 30" / "notes.txt").write_text("photos from the trip, see the spreadsheet\n")
    (labeled / "keep right" / "receipt.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    (labeled / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (labeled / "roundabout" / "._IMG_4000.JPG").write_bytes(b"\x00\x05\x16\x07")  # macOS metadata
    (labeled / "pedestrians" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (unlabeled / "test_broken.jpg").write_bytes(some_image[:200])
    (unlabeled / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return counts


def make_sample_folder(root: Path | str, *, seed: int = 0, verbose: bool = True) -> SampleFolder:
    """Write lesson 5's practice folder under ``root`` (once; later calls find it) and return its two parts.

    ``root/<settings-hash>/labeled/<class>/...`` and ``root/<settings-hash>/unlabeled/...``. The folder is
    assembled under a temporary name and renamed when complete, so an interrupted run never leaves a folder that
    looks finished, and the next call removes what a killed run left (:mod:`course_utils.cache_folders`). About
    230 small images: a few seconds.
    """
    settings = {"version": FOLDER_VERSION, "generator_version": synthetic.GENERATOR_VERSION, "seed": seed,
                "classes": {name: list(value) for name, value in SAMPLE_CLASSES.items()},
                "unlabeled_per_class": UNLABELED_PER_CLASS}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(root).expanduser() / digest

    def write(partial: Path) -> dict:
        if verbose:
            messages.say(f"Making lesson 5's sample folder in {display_path(folder)} ...")
        return {"counts": _write_folder(partial, seed)}

    build_folder_once(folder, settings, write, not_ours="a practice folder the course made", verbose=verbose)
    return SampleFolder(folder / "labeled", folder / "unlabeled")


# ---------------------------------------------------------------------------------- the unlabeled copy
#: The file that marks a folder :func:`copy_unlabeled_images` made; it lists the images the course copied there.
COPY_MARKER = ".course-unlabeled-copy.json"


def _copied_files(folder: Path) -> list[str] | None:
    """The names :func:`copy_unlabeled_images` wrote into ``folder``, when ``folder`` holds nothing else.

    ``None`` when ``folder`` is not such a copy: a link, no marker, a marker that does not read as the course's
    (a list of plain file names), or any other entry besides the marker and those files (someone's own image).
    """
    marker = folder / COPY_MARKER
    if folder.is_symlink() or not folder.is_dir() or marker.is_symlink() or not marker.is_file():
        return None
    try:
        names = json.loads(marker.read_text()).get("files")
        entries = [path for path in folder.iterdir() if path.name != COPY_MARKER]
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(names, list) or not all(isinstance(name, str) and name == Path(name).name
                                              and name not in ("", ".", "..") for name in names):
        return None
    if any(path.name not in names or path.is_symlink() or not path.is_file() for path in entries):
        return None
    return names


def copy_unlabeled_images(images: Sequence[Path | str], parent: Path | str, *, name: str = "unlabeled",
                          verbose: bool = True) -> Path:
    """Copy ``images`` into a folder ``parent/<name>`` of the course's, without their labels; return the folder.

    For a data set without a folder of unlabeled images (Oxford-IIIT Pet has none), lesson 5 predicts a few test
    images instead: ``image_000.jpg``, ``image_001.png``, ... (the label-free names a client would send). The
    folder is marked with :data:`COPY_MARKER`, which lists the copies; a later call empties and refills only a
    folder so marked that holds nothing else. Any other folder of that name (the user's own photos, say) is left
    as it is, and the copy goes to ``<name>-2``, ``<name>-3``, ... instead, with one line saying so.
    """
    parent = Path(parent)
    names = [f"image_{number:03d}{Path(image).suffix.lower()}" for number, image in enumerate(images)]
    for number in range(1, 100):
        folder = parent / (name if number == 1 else f"{name}-{number}")
        if not folder.exists() and not folder.is_symlink():
            folder.mkdir(parents=True)
            break
        earlier = _copied_files(folder)
        if earlier is not None:  # the course's own copy from an earlier run: emptied, then filled again
            for old in earlier:
                (folder / old).unlink(missing_ok=True)
            break
    else:
        raise FileExistsError(f"{display_path(parent / name)} and {name}-2 ... {name}-99 beside it all exist and "
                              "are not the course's: move some of them away.")
    if verbose and folder.name != name:
        messages.say(f"ℹ️ {display_path(parent / name)} is not a folder the course made: left as it is; copying the "
                     f"unlabeled images to {display_path(folder)} instead.")
    write_json_atomic(folder / COPY_MARKER, {"made_by": "course_utils.sample_folders.copy_unlabeled_images",
                                             "files": names})  # first: an interrupted copy stays the course's
    for image, copy in zip(images, names, strict=True):
        shutil.copyfile(image, folder / copy)
    return folder
