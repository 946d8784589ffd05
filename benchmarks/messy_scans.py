"""Write the messy folder of real scans that benchmarks/README.md runs through `course run 03 05` (issue 19).

scikit-learn's ``load_digits`` (real 8x8 scans of handwriting, shipped with the package: no download) for the
digits 0, 1, 7 and 8, 45 of each, written as dark ink on white and upscaled to 48-87 pixels, in a folder laid out
the way a person's photos are: odd folder and file names (``one (scanned)``, ``IMG_0001.JPG``, ``.jpeg``), a class of
three images (the lessons drop it), a truncated JPEG, an empty PNG, a text file, ``.DS_Store`` and a ``._`` file.

    .venv/bin/python benchmarks/messy_scans.py /tmp/messy-scans
    .venv/bin/course run 03 05 --profile offline --output build/messy-scans -p DATASET /tmp/messy-scans
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

CLASS_FOLDERS = {0: "zero", 1: "one (scanned)", 7: "Seven", 8: "eight"}
PER_CLASS = 45


def scan_image(pixels: np.ndarray, side: int) -> Image.Image:
    """An 8x8 scan (0 = paper, 16 = ink) as a ``side``-pixel RGB image of dark ink on white."""
    grey = (255 - pixels * (255 / 16)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").resize((side, side), Image.Resampling.BICUBIC).convert("RGB")


def write_folder(root: Path, seed: int = 0) -> Path:
    """Write the folder under ``root`` (which must not exist yet) and return it."""
    if root.exists():
        raise FileExistsError(f"{root} exists: choose a new folder, the script writes only into one of its own.")
    digits = load_digits()
    rng = np.random.default_rng(seed)
    for digit, folder_name in CLASS_FOLDERS.items():
        folder = root / folder_name
        folder.mkdir(parents=True)
        indices = np.flatnonzero(digits.target == digit)[:PER_CLASS]
        for number, index in enumerate(indices):
            image = scan_image(digits.images[index], int(rng.integers(48, 88)))
            suffix = (".JPG", ".jpeg", ".png")[number % 3]
            image.save(folder / f"IMG_{number + 1:04d}{suffix}", quality=90)
    rare = root / "two"  # three images: below the lessons' minimum, dropped with one line
    rare.mkdir()
    for number, index in enumerate(np.flatnonzero(digits.target == 2)[:3]):
        scan_image(digits.images[index], 64).save(rare / f"scan {number}.png")
    truncated = (root / "zero" / "IMG_0001.JPG").read_bytes()
    (root / "zero" / "IMG_9999.JPG").write_bytes(truncated[: len(truncated) // 2])
    (root / "Seven" / "empty.png").write_bytes(b"")
    (root / "eight" / "notes.txt").write_text("scanned on the office printer\n")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "one (scanned)" / "._IMG_0001.JPG").write_bytes(b"\0\5\26\7 AppleDouble")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a new folder to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image sizes (default: 0)")
    arguments = parser.parse_args()
    print(f"wrote {write_folder(arguments.folder, arguments.seed)}")


if __name__ == "__main__":
    main()
