"""Helpers the tests share (plain functions; the fixtures live in conftest.py): tiny images, notebooks, and
stand-ins for the downloads of ``course prefetch``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nbformat
import numpy as np
from nbformat.v4 import new_notebook
from PIL import Image

__all__ = ["fake_gtsrb", "fake_weights", "picture", "python_notebook", "stand_in_gtsrb", "stand_in_pets", "write_image"]


def write_image(path: Path, size: tuple[int, int] = (8, 8), colour=(200, 30, 30), mode: str = "RGB") -> Path:
    """Write a tiny one-colour image (format from the suffix) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


def python_notebook(cells: list, folder: Path | None = None, name: str | None = None) -> nbformat.NotebookNode:
    """A notebook with the ``python3`` kernelspec holding ``cells``; written to ``folder/name.ipynb`` if given."""
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = list(cells)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(folder / f"{name}.ipynb"))
    return nb


def fake_gtsrb(data_dir: Path) -> None:
    """The files torchvision's GTSRB looks for, with a few bytes each."""
    base = data_dir / "gtsrb"
    (base / "GTSRB" / "Training" / "00014").mkdir(parents=True)
    (base / "GTSRB" / "Training" / "00014" / "00000_00000.ppm").write_bytes(b"P6 1 1 255 abc")
    (base / "GTSRB" / "Final_Test" / "Images").mkdir(parents=True)
    (base / "GTSRB" / "Final_Test" / "Images" / "00000.ppm").write_bytes(b"P6 1 1 255 abc")
    (base / "GT-final_test.csv").write_text("Filename;ClassId\n00000.ppm;14\n")


def fake_weights(torch_home: Path, arch: str = "resnet18") -> tuple[Path, str]:
    """A small state dict saved under torch hub's name rule (``<arch>-<sha256 prefix>.pth``); its URL."""
    import torch  # only the tests that need weights pay for importing torch

    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    scratch = folder / "scratch.pth"
    torch.save({"fc.weight": torch.ones(2, 3)}, scratch)
    digest = hashlib.sha256(scratch.read_bytes()).hexdigest()[:8]
    path = scratch.rename(folder / f"{arch}-{digest}.pth")
    return path, f"https://download.pytorch.org/models/{path.name}"


def picture(class_index: int, variant: int, size: int = 32) -> Image.Image:
    """A small image whose colour and stripe depend on the class (learnable), varied per image."""
    rng = np.random.default_rng(1000 * class_index + variant)
    base = np.array([(53 * class_index) % 256, (97 * class_index + 40) % 256, (151 * class_index + 80) % 256])
    pixels = np.clip(base + rng.normal(0, 25, (size, size, 3)), 0, 255)
    pixels[:, (class_index * 3) % size: (class_index * 3) % size + 4] = 255
    return Image.fromarray(pixels.astype(np.uint8))


def stand_in_gtsrb(data_dir: Path, tracks: int = 3, frames: int = 2, test_per_class: int = 2) -> None:
    """torchvision's GTSRB layout: gtsrb/GTSRB/Training/000NN/<track>_<frame>.ppm, the test images in
    gtsrb/GTSRB/Final_Test/Images and their labels in gtsrb/GT-final_test.csv."""
    from course_utils.datasets import GTSRB_CLASSES

    base = data_dir / "gtsrb"
    test_dir = base / "GTSRB" / "Final_Test" / "Images"
    test_dir.mkdir(parents=True)
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for class_id in range(len(GTSRB_CLASSES)):
        class_dir = base / "GTSRB" / "Training" / f"{class_id:05d}"
        class_dir.mkdir(parents=True)
        for track in range(tracks):
            for frame in range(frames):
                picture(class_id, track * 10 + frame).save(class_dir / f"{track:05d}_{frame:05d}.ppm")
        for number in range(test_per_class):
            name = f"{class_id * test_per_class + number:05d}.ppm"
            picture(class_id, 500 + number).save(test_dir / name)
            rows.append(f"{name};32;32;0;0;31;31;{class_id}")
    (base / "GT-final_test.csv").write_text("\n".join(rows) + "\n")


def stand_in_pets(data_dir: Path, per_class: int = 12, test_per_class: int = 4) -> None:
    """torchvision's Oxford-IIIT Pet layout with learnable stand-in photos: oxford-iiit-pet/images/<Breed>_<n>.jpg
    and annotations/{trainval,test}.txt (``id class species breed``; species 1 cat, 2 dog), two breeds."""
    base = data_dir / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations").mkdir()
    for split, first, count in (("trainval", 0, per_class), ("test", 100, test_per_class)):
        lines = []
        for label, breed in enumerate(("Abyssinian", "beagle")):  # a cat breed, then a dog breed
            for number in range(first, first + count):
                picture(label, number).save(base / "images" / f"{breed}_{number}.jpg")
                lines.append(f"{breed}_{number} {label + 1} {label + 1} 1")
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
