"""Helpers the tests share (plain functions; the fixtures live in conftest.py): tiny images, notebooks, and
stand-ins for the downloads of ``course prefetch``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nbformat
from nbformat.v4 import new_notebook
from PIL import Image

__all__ = ["fake_gtsrb", "fake_weights", "python_notebook", "write_image"]


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
