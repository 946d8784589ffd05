"""Opening images the way every model here expects them, and telling a usable image file from a broken one.

:func:`load_rgb` turns any picture (grayscale, palette, transparent, CMYK, 16-bit, rotated by a phone camera,
huge) into 8-bit RGB. :func:`image_problem` says why a file cannot be used, without decoding whole images
where a cheaper check is reliable. :func:`to_numpy` turns lists, arrays and (GPU) tensors into NumPy arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

__all__ = ["IMAGE_EXTENSIONS", "MAX_IMAGE_SIDE", "UNREADABLE", "image_problem", "is_hidden", "load_rgb", "to_numpy"]

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".gif", ".tif", ".tiff", ".webp",
)
#: Images larger than this (on their longer side) are shrunk when loaded: no lesson needs more pixels.
MAX_IMAGE_SIDE = 2048
_SYSTEM_FILES = {"thumbs.db", "desktop.ini", "__macosx"}
#: Why a file or folder the course may not read (its permissions forbid it) is skipped.
UNREADABLE = "not readable, permission denied"


def load_rgb(path: str | Path) -> Image.Image:
    """Open any image as an 8-bit RGB picture, the one format every model here expects.

    Handles grayscale, palette, transparency (composited on white, so a transparent background does not
    turn black), CMYK, 16-bit and float images, EXIF rotation from phone cameras, and shrinks huge images
    to at most :data:`MAX_IMAGE_SIDE` pixels per side.
    """
    with Image.open(path) as image:
        image.draft("RGB", (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))  # JPEG: decode at a reduced size, cheaply
        image.load()
        image = ImageOps.exif_transpose(image)
    if max(image.size) > MAX_IMAGE_SIDE:
        image.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
    if image.mode.startswith("I") or image.mode == "F":  # 16-bit, 32-bit or float grayscale
        values = np.asarray(image, dtype=np.float64)
        if image.mode == "F" and values.max(initial=0) <= 1.0:
            values = values * 255.0
        elif values.max(initial=0) > 255:
            values = values / 257.0  # 0..65535 -> 0..255
        image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P" or image.mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def is_hidden(name: str) -> bool:
    """System and hidden files (``.DS_Store``, ``._photo.jpg``, ``Thumbs.db``) that no user meant as images."""
    return name.startswith(".") or name.lower() in _SYSTEM_FILES


def _jpeg_is_complete(path: Path, size: int) -> bool:
    """A complete JPEG ends with the end-of-image marker FF D9 (padding after it is tolerated)."""
    with open(path, "rb") as handle:
        handle.seek(max(0, size - 1024))
        tail = handle.read().rstrip(b"\x00\r\n ")
    return tail.endswith(b"\xff\xd9")


def image_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used as an image, or None when it is fine."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return "not an image file"
    try:
        size = path.stat().st_size
    except PermissionError:
        return UNREADABLE
    if size == 0:
        return "empty file"
    try:
        with Image.open(path) as image:
            image_format = image.format
            image.verify()  # PNG: walks every chunk and checks its checksum; other formats: header only
        if image_format == "JPEG":
            return None if _jpeg_is_complete(path, size) else "truncated or corrupt"
        if image_format != "PNG":
            with Image.open(path) as image:
                image.load()
    except PermissionError:
        return UNREADABLE
    except (Image.DecompressionBombError, MemoryError):
        return "too large to open safely"
    except Image.UnidentifiedImageError:
        return "not a readable image"
    except (OSError, SyntaxError, ValueError, EOFError):
        return "truncated or corrupt"
    return None


def to_numpy(values: Any) -> np.ndarray:
    """A NumPy array from a list, an array or a tensor (on any device; gradients are dropped)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)
