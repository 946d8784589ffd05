"""Synthetic GTSRB-like traffic signs, so that every lesson runs offline.

Drawing takes seconds for a lesson's few thousand images, and a cached second call checks every image's size and
SHA-256 digest against the manifest in well under a second; the data are hard enough that a small CNN from
scratch stays far below frozen pretrained features (``benchmarks/bench_synthetic.py``; the figures are in
``benchmarks/README.md``, "Figures behind the package's defaults").

Each sign type is drawn anti-aliased (at four times the size, then downsampled), then placed in a
*scene*: a background (crops of scikit-learn's sample photos, textures, gradients, clutter in sign-like
colours), a slight rotation and perspective, a faded or shaded paint, sometimes a partial occlusion.
Like GTSRB, images come in **tracks**: one physical sign seen in several frames as the car approaches.
The frames of a track share the scene and differ in size (growing), small shifts, blur, lighting and noise,
so they are near-duplicates: a random split of frames leaks, a split by track does not.

Files follow GTSRB's naming, ``<root>/<settings-hash>/<class>/<track:05d>_<frame:05d>.png``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import io
import json
import stat
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from course_utils import messages
from course_utils.cache_folders import MANIFEST_NAME, build_folder_once
from course_utils.config import TARGET_SIGNS
from course_utils.files import atomic_write, write_json_atomic

__all__ = ["ALL_SIGNS", "GENERATOR_VERSION", "OTHER_SIGNS", "SCENE_COLOURS", "SCENE_SIZE", "SUPERSAMPLING",
           "generate_signs", "render_scene", "render_sign"]

#: Sign types that are not among the four targets; lesson 4 folds them into "unknown".
OTHER_SIGNS: tuple[str, ...] = (
    "speed_limit_30", "speed_limit_50", "speed_limit_70", "no_passing", "no_vehicles", "end_of_limits",
    "general_caution", "road_work", "pedestrians", "right_of_way",
    "ahead_only", "keep_right", "turn_right_ahead", "roundabout",
)
ALL_SIGNS: tuple[str, ...] = TARGET_SIGNS + OTHER_SIGNS

#: Bump when the images change, so that cached folders from an older generator are not reused.
GENERATOR_VERSION = 1
SCENE_SIZE = 144  # side of the square scene each track is cut from, in pixels
SUPERSAMPLING = 4  # signs are drawn this many times larger, then downsampled (anti-aliasing)

RED, BLUE, YELLOW = (200, 25, 35), (20, 75, 165), (250, 195, 15)
WHITE, BLACK, GREY = (245, 245, 242), (20, 20, 22), (150, 150, 150)
SCENE_COLOURS = np.array([  # sky, foliage, concrete, brick, asphalt, sign-like red/blue/yellow/white
    (135, 180, 225), (190, 210, 230), (60, 110, 50), (100, 140, 60), (130, 130, 125), (180, 170, 160),
    (150, 70, 50), (60, 60, 65), (200, 40, 45), (40, 80, 170), (230, 190, 40), (235, 235, 235), (90, 60, 40),
], dtype=np.float32)


# ----------------------------------------------------------------------------------------- drawing
@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 ships a scalable default font
    except TypeError:  # older Pillow: try a common system font
        return ImageFont.truetype("DejaVuSans-Bold.ttf", size)


def _polygon(centre: float, radius: float, corners: int, start_degrees: float) -> list[tuple[float, float]]:
    angles = np.radians(start_degrees + 360.0 * np.arange(corners) / corners)
    return [(centre + radius * np.cos(a), centre + radius * np.sin(a)) for a in angles]


def _arrow(draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], width: float, fill) -> None:
    """A thick line through ``points`` ending in a triangular head at the last point."""
    (x0, y0), (x1, y1) = points[-2], points[-1]
    direction = np.array([x1 - x0, y1 - y0]) / max(np.hypot(x1 - x0, y1 - y0), 1e-6)
    normal = np.array([-direction[1], direction[0]])
    head = 1.9 * width
    base = np.array([x1, y1]) - direction * head
    draw.line([*points[:-1], tuple(base + direction * 2)], fill=fill, width=int(width), joint="curve")
    draw.polygon([(x1, y1), tuple(base + normal * head), tuple(base - normal * head)], fill=fill)


def _triangle(n: float, pointing_up: bool, inset: float = 0.0) -> list[tuple[float, float]]:
    margin, side = 0.03 * n, 0.94 * n
    height = side * np.sqrt(3) / 2
    top = (n - height) / 2
    points = [(n / 2, top), (margin + side, top + height), (margin, top + height)]
    if not pointing_up:
        points = [(x, n - y) for x, y in points]
    cx, cy = np.mean(points, axis=0)
    scale = 1 - inset / (side / (2 * np.sqrt(3)))  # shrink towards the centroid by ``inset`` pixels
    return [(cx + (x - cx) * scale, cy + (y - cy) * scale) for x, y in points]


def _person(draw, cx: float, cy: float, n: float, bending: bool = False) -> None:
    w = int(0.035 * n)
    lean = 0.05 * n if bending else 0.015 * n
    draw.ellipse([cx - 0.035 * n + lean, cy - 0.17 * n, cx + 0.035 * n + lean, cy - 0.10 * n], fill=BLACK)
    hip = (cx - 0.01 * n, cy + 0.04 * n)
    draw.line([(cx + lean, cy - 0.09 * n), hip], fill=BLACK, width=w + 4)
    draw.line([hip, (cx - 0.08 * n, cy + 0.16 * n)], fill=BLACK, width=w)
    draw.line([hip, (cx + 0.06 * n, cy + 0.16 * n)], fill=BLACK, width=w)
    draw.line([(cx - 0.07 * n, cy - 0.01 * n), (cx + lean, cy - 0.07 * n), (cx + 0.07 * n, cy)], fill=BLACK,
              width=w, joint="curve")


def _car(draw, cx: float, cy: float, n: float, colour) -> None:
    w, h = 0.17 * n, 0.09 * n
    draw.rounded_rectangle([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], radius=0.02 * n, fill=colour)
    draw.polygon([(cx - 0.36 * w, cy - h / 2), (cx - 0.25 * w, cy - 1.3 * h), (cx + 0.25 * w, cy - 1.3 * h),
                  (cx + 0.36 * w, cy - h / 2)], fill=colour)
    for side in (-1, 1):
        x = cx + side * 0.33 * w
        draw.rectangle([x - 0.025 * n, cy + h / 2, x + 0.025 * n, cy + h / 2 + 0.04 * n], fill=BLACK)


def _draw_pictogram(draw: ImageDraw.ImageDraw, name: str, n: float, line: float) -> None:
    c = n / 2
    if name.startswith("speed_limit_"):
        digits = name.rsplit("_", 1)[1]
        size = int(n * (0.40 if len(digits) == 2 else 0.30))
        draw.text((c, c), digits, font=_font(size), fill=BLACK, anchor="mm", stroke_width=int(0.012 * n),
                  stroke_fill=BLACK)
    elif name == "no_passing":
        _car(draw, c - 0.13 * n, c + 0.04 * n, n, RED)
        _car(draw, c + 0.13 * n, c + 0.04 * n, n, BLACK)
    elif name == "end_of_limits":
        radius = 0.40 * n
        for offset in np.linspace(-0.2 * n, 0.2 * n, 5):  # diagonal chords of the disc
            half = np.sqrt(radius**2 - offset**2)
            mid = np.array([c, c]) + offset * np.array([1, 1]) / np.sqrt(2)
            along = half * np.array([1, -1]) / np.sqrt(2)
            draw.line([tuple(mid - along), tuple(mid + along)], fill=BLACK, width=int(0.025 * n))
    elif name == "general_caution":
        cy = 0.58 * n
        draw.polygon([(c - 0.045 * n, cy - 0.2 * n), (c + 0.045 * n, cy - 0.2 * n),
                      (c + 0.022 * n, cy + 0.07 * n), (c - 0.022 * n, cy + 0.07 * n)], fill=BLACK)
        draw.ellipse([c - 0.035 * n, cy + 0.11 * n, c + 0.035 * n, cy + 0.18 * n], fill=BLACK)
    elif name == "pedestrians":
        _person(draw, c, 0.63 * n, n)
    elif name == "road_work":
        _person(draw, c + 0.04 * n, 0.63 * n, n, bending=True)
        draw.line([(c - 0.03 * n, 0.62 * n), (c - 0.15 * n, 0.78 * n)], fill=BLACK, width=int(0.025 * n))
        draw.pieslice([c - 0.28 * n, 0.72 * n, c - 0.06 * n, 0.9 * n], 180, 360, fill=BLACK)
    elif name == "right_of_way":
        draw.rectangle([c - 0.04 * n, 0.43 * n, c + 0.04 * n, 0.8 * n], fill=BLACK)
        draw.rectangle([c - 0.13 * n, 0.57 * n, c + 0.13 * n, 0.62 * n], fill=BLACK)
    elif name == "ahead_only":
        _arrow(draw, [(c, c + 0.32 * n), (c, c - 0.32 * n)], line, WHITE)
    elif name == "keep_right":
        _arrow(draw, [(c - 0.2 * n, c - 0.2 * n), (c + 0.22 * n, c + 0.22 * n)], line, WHITE)
    elif name == "turn_right_ahead":
        corner = (c - 0.12 * n, c - 0.08 * n)
        _arrow(draw, [(c - 0.12 * n, c + 0.32 * n), corner, (c + 0.32 * n, c - 0.08 * n)], line, WHITE)
    elif name == "roundabout":
        for start in (90, 210, 330):  # three arcs chasing each other anticlockwise
            angles = np.radians(-(start + np.linspace(0, 80, 9)))
            points = [(c + 0.24 * n * np.cos(a), c + 0.24 * n * np.sin(a)) for a in angles]
            _arrow(draw, points, 0.75 * line, WHITE)


def render_sign(name: str, size: int, rng: np.random.Generator | None = None) -> Image.Image:
    """Draw the sign ``name`` (one of :data:`ALL_SIGNS`) as a clean, anti-aliased RGBA image of ``size`` px.

    Outside the sign is transparent. With ``rng``, the paint colours and line widths vary a little, as
    they do between real signs; without it, the drawing is the canonical one.
    """
    if name not in ALL_SIGNS:
        raise ValueError(f"Unknown sign {name!r}: choose one of {', '.join(ALL_SIGNS)}.")
    n = size * SUPERSAMPLING
    c = n / 2
    jitter = (lambda colour: tuple(int(np.clip(v + rng.integers(-12, 13), 0, 255)) for v in colour)) if rng \
        else (lambda colour: colour)
    red, blue, yellow, white = jitter(RED), jitter(BLUE), jitter(YELLOW), jitter(WHITE)
    border = n * (0.085 if rng is None else rng.uniform(0.075, 0.095))
    image = Image.new("RGBA", (n, n), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    disc = [0.02 * n, 0.02 * n, 0.98 * n, 0.98 * n]
    if name == "stop":
        draw.polygon(_polygon(c, 0.5 * n, 8, 22.5), fill=white)
        draw.polygon(_polygon(c, 0.5 * n - 0.035 * n, 8, 22.5), fill=red)
        draw.text((c, c), "STOP", font=_font(int(0.29 * n)), fill=white, anchor="mm",
                  stroke_width=int(0.01 * n), stroke_fill=white)
    elif name == "give_way":
        draw.polygon(_triangle(n, pointing_up=False), fill=red)
        draw.polygon(_triangle(n, pointing_up=False, inset=border), fill=white)
    elif name == "priority_road":
        draw.polygon(_polygon(c, 0.49 * n, 4, 0), fill=(70, 70, 70))
        draw.polygon(_polygon(c, 0.47 * n, 4, 0), fill=white)
        draw.polygon(_polygon(c, 0.33 * n, 4, 0), fill=yellow)
    elif name == "no_entry":
        draw.ellipse(disc, fill=white)
        draw.ellipse([v + (0.015 * n if i < 2 else -0.015 * n) for i, v in enumerate(disc)], fill=red)
        draw.rectangle([0.2 * n, 0.42 * n, 0.8 * n, 0.58 * n], fill=white)
    elif name in ("general_caution", "road_work", "pedestrians", "right_of_way"):
        draw.polygon(_triangle(n, pointing_up=True), fill=red)
        draw.polygon(_triangle(n, pointing_up=True, inset=border), fill=white)
        _draw_pictogram(draw, name, n, border)
    elif name in ("ahead_only", "keep_right", "turn_right_ahead", "roundabout"):
        draw.ellipse(disc, fill=white)
        draw.ellipse([v + (0.02 * n if i < 2 else -0.02 * n) for i, v in enumerate(disc)], fill=blue)
        _draw_pictogram(draw, name, n, 0.09 * n)
    else:  # round prohibitory signs: white disc, red ring (grey and thin for "end of limits")
        ring, inner = (GREY, 0.015 * n) if name == "end_of_limits" else (red, 1.3 * border)
        draw.ellipse(disc, fill=ring)
        draw.ellipse([v + (inner if i < 2 else -inner) for i, v in enumerate(disc)], fill=white)
        _draw_pictogram(draw, name, n, border)
    return image.resize((size, size), Image.LANCZOS)


# ------------------------------------------------------------------------------------------ scenes
@functools.lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    """scikit-learn's two bundled sample photos (china.jpg, flower.jpg), read without a download."""
    spec = importlib.util.find_spec("sklearn")  # found without importing scikit-learn (slow)
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "images" if spec else None
    if folder is not None and (folder / "china.jpg").exists():
        names = ("china.jpg", "flower.jpg")
        return tuple(np.asarray(Image.open(folder / name).convert("RGB")) for name in names)
    from sklearn.datasets import load_sample_images

    return tuple(load_sample_images().images)


def _noise_texture(rng: np.random.Generator, m: int) -> np.ndarray:
    """Smooth colourful blobs: a few random colours at low resolution, upsampled, plus fine grain."""
    cells = int(rng.integers(3, 12))
    colours = SCENE_COLOURS[rng.integers(0, len(SCENE_COLOURS), size=(cells, cells))]
    colours = colours + rng.normal(0, 18, size=colours.shape)
    small = Image.fromarray(np.clip(colours, 0, 255).astype(np.uint8))
    texture = np.asarray(small.resize((m, m), Image.BICUBIC), dtype=np.float32)
    return texture + rng.normal(0, rng.uniform(2, 14), size=(m, m, 1))


def _gradient(rng: np.random.Generator, m: int) -> np.ndarray:
    top, bottom = SCENE_COLOURS[rng.integers(0, len(SCENE_COLOURS), size=2)]
    if rng.random() < 0.5:  # a sky
        top, bottom = np.array([110, 160, 220]) * rng.uniform(0.7, 1.2), np.array([225, 230, 235])
    ramp = np.linspace(0, 1, m, dtype=np.float32)[:, None, None] ** rng.uniform(0.5, 2)
    image = top * (1 - ramp) + bottom * ramp + np.zeros((m, m, 3), dtype=np.float32)
    return image if rng.random() < 0.5 else np.transpose(image, (1, 0, 2))


def _photo_crop(rng: np.random.Generator, m: int) -> np.ndarray:
    photo = _photos()[rng.integers(0, len(_photos()))]
    side = int(rng.integers(40, 320))
    top, left = rng.integers(0, photo.shape[0] - side), rng.integers(0, photo.shape[1] - side)
    crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((m, m), Image.BILINEAR)
    crop = np.asarray(crop, dtype=np.float32)
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def _add_clutter(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """Poles, boxes, discs and triangles in sign-like colours, so that colour alone is no shortcut."""
    m = background.shape[0]
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 9))):
        colour = tuple(int(v) for v in SCENE_COLOURS[rng.integers(0, len(SCENE_COLOURS))])
        x, y = rng.uniform(-0.2, 1.0, size=2) * m
        w, h = rng.uniform(0.1, 0.6, size=2) * m
        kind = rng.integers(0, 4)
        if kind == 0:
            draw.rectangle([x, y, x + w, y + h], fill=colour)
        elif kind == 1:
            draw.ellipse([x, y, x + w, y + w], fill=colour)
        elif kind == 2:
            draw.polygon([(x, y + h), (x + w, y + h), (x + w / 2, y)], fill=colour)
        else:
            draw.rectangle([x, -1, x + 0.06 * m, m], fill=colour)  # a pole
    return np.asarray(image, dtype=np.float32)


def _background(rng: np.random.Generator, m: int) -> np.ndarray:
    kind = rng.choice(["photo", "texture", "gradient", "mixed"], p=[0.35, 0.2, 0.15, 0.3])
    if kind == "photo":
        background = _photo_crop(rng, m)
    elif kind == "texture":
        background = _noise_texture(rng, m)
    elif kind == "gradient":
        background = _gradient(rng, m)
    else:
        weight = rng.uniform(0.3, 0.7)
        background = weight * _photo_crop(rng, m) + (1 - weight) * _noise_texture(rng, m)
    if rng.random() < 0.5:
        background = _add_clutter(rng, background)
    return background


def _perspective_coefficients(target: np.ndarray, source: np.ndarray) -> list[float]:
    """The 8 numbers PIL's PERSPECTIVE transform needs to map ``target`` corners back to ``source``."""
    rows = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    return np.linalg.solve(np.array(rows, dtype=np.float64), source.reshape(8)).tolist()


def _scene(name: str, rng: np.random.Generator, sign_fraction: float) -> Image.Image:
    """One physical sign in its surroundings: the picture every frame of a track is cut from."""
    return _scene_with_mask(name, rng, sign_fraction)[0]


def render_scene(name: str, seed: int = 0, sign_fraction: float = 0.5) -> tuple[Image.Image, np.ndarray]:
    """One sign ``name`` in a random scene (``SCENE_SIZE`` pixels square), and where the sign is.

    Returns ``(image, mask)``: ``mask`` is a ``SCENE_SIZE x SCENE_SIZE`` float array, 1 on the sign's paint
    and 0 elsewhere (soft at the anti-aliased edges; an occluder drawn in front still counts as sign). The
    sign, centred, spans about ``sign_fraction`` of the scene's side. Used to test where a model looks
    (class activation maps); the data set's frames are cut from such scenes.
    """
    if name not in ALL_SIGNS:
        raise ValueError(f"Unknown sign type {name!r}: choose from {', '.join(ALL_SIGNS)}.")
    if not 0.05 <= sign_fraction <= 1.0:
        raise ValueError(f"sign_fraction must be between 0.05 and 1, not {sign_fraction}.")
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), 1_000_003])
    return _scene_with_mask(name, rng, sign_fraction)


def _scene_with_mask(name: str, rng: np.random.Generator, sign_fraction: float
                     ) -> tuple[Image.Image, np.ndarray]:
    m = SCENE_SIZE
    side = int(round(sign_fraction * 0.88 * m))
    sign = render_sign(name, side, rng)
    # Where the sign's corners land: rotated a little, then each corner pushed around (perspective).
    angle = np.radians(rng.normal(0, 6))
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * side / 2
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    squeeze = np.array([rng.uniform(0.8, 1.0), rng.uniform(0.9, 1.0)])  # seen a bit from the side
    target = corners @ rotation.T * squeeze + rng.normal(0, 0.04 * side, size=(4, 2)) + m / 2
    source = np.array([[0, 0], [side, 0], [side, side], [0, side]], dtype=np.float64)
    placed = sign.convert("RGBa").transform((m, m), Image.PERSPECTIVE,
                                             _perspective_coefficients(target, source), Image.BICUBIC)
    placed = np.asarray(placed.convert("RGBA"), dtype=np.float32)
    paint, alpha = placed[..., :3], placed[..., 3:] / 255
    fade = rng.uniform(0, 0.35) if rng.random() < 0.5 else 0.0  # sun-bleached paint
    paint = paint * (1 - fade) + fade * np.array([200, 195, 185])
    direction = rng.normal(size=2)  # a shadow or a highlight across the sign
    ramp = (np.indices((m, m)).transpose(1, 2, 0) @ direction) / m
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    paint = paint * (1 - rng.uniform(0, 0.45) * ramp[..., None])
    scene = _background(rng, m) * (1 - alpha) + paint * alpha
    image = Image.fromarray(np.clip(scene, 0, 255).astype(np.uint8))
    if rng.random() < 0.2:  # partial occlusion: foliage, or a pole in front of the sign
        draw = ImageDraw.Draw(image)
        colour = tuple(int(v) for v in SCENE_COLOURS[rng.choice([2, 3, 4, 7, 12])])
        edge = rng.choice([-1, 1])
        x = m / 2 + edge * side * rng.uniform(0.2, 0.4)
        if rng.random() < 0.5:
            draw.rectangle([x - 0.05 * m, 0, x + 0.05 * m, m], fill=colour)
        else:
            for _ in range(6):
                cx, cy = x + edge * rng.uniform(0, 0.3) * m, rng.uniform(0.2, 0.8) * m
                r = rng.uniform(0.06, 0.14) * m
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    return image, alpha[..., 0]


def _track_frames(name: str, rng: np.random.Generator, frames: int) -> list[Image.Image]:
    """The frames of one track: the same scene, growing as the car approaches, with varying conditions."""
    scene = _scene(name, rng, sign_fraction=rng.uniform(0.68, 0.95))
    first = rng.uniform(25, 55)
    last = rng.uniform(min(first * 1.3, 110), min(first * 2.8, 118))
    aspect = np.sqrt(rng.uniform(0.88, 1.12))
    brightness, contrast = rng.uniform(0.45, 1.35), rng.uniform(0.55, 1.15)
    cast = rng.uniform(0.82, 1.18, size=3)
    blur, noise = rng.uniform(0, 1.0) ** 2, rng.uniform(0, 10)
    jpeg_quality = int(rng.integers(20, 70)) if rng.random() < 0.35 else None
    images = []
    for index in range(frames):
        t = index / (frames - 1) if frames > 1 else 0.5
        side = first * (last / first) ** t
        width = int(np.clip(round(side * aspect * rng.uniform(0.97, 1.03)), 25, 125))
        height = int(np.clip(round(side / aspect), 25, 125))
        window = 0.88 * SCENE_SIZE * rng.uniform(0.97, 1.03)
        cx, cy = SCENE_SIZE / 2 + rng.uniform(-0.03, 0.03, size=2) * SCENE_SIZE
        half_w, half_h = min(window * aspect, SCENE_SIZE) / 2, min(window / aspect, SCENE_SIZE) / 2
        cx, cy = np.clip(cx, half_w, SCENE_SIZE - half_w), np.clip(cy, half_h, SCENE_SIZE - half_h)
        box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
        frame = scene.resize((width, height), Image.BILINEAR, box=box)
        radius = blur * rng.uniform(0.6, 1.4)
        if radius > 0.15:
            frame = frame.filter(ImageFilter.GaussianBlur(radius))
        pixels = np.asarray(frame, dtype=np.float32)
        mean = pixels.mean()
        pixels = ((pixels - mean) * contrast + mean) * brightness * rng.uniform(0.9, 1.1) * cast
        pixels += rng.normal(0, noise * rng.uniform(0.7, 1.3) + 1, size=pixels.shape)
        frame = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        if jpeg_quality is not None:
            buffer = io.BytesIO()
            frame.save(buffer, format="JPEG", quality=jpeg_quality)
            frame = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        images.append(frame)
    return images


# -------------------------------------------------------------------------------------- the folder
def _settings(classes: Sequence[str], tracks_per_class: int, frames_per_track: int, seed: int) -> dict:
    return {"generator_version": GENERATOR_VERSION, "classes": sorted(classes),
            "tracks_per_class": tracks_per_class, "frames_per_track": frames_per_track, "seed": seed}


def _track_rng(seed: int, name: str, track: int) -> np.random.Generator:
    # Seeded per (seed, class, track): adding a class or a track never changes the others' images.
    return np.random.default_rng([seed, zlib.crc32(name.encode()), track])


def _png_bytes(frame: Image.Image) -> bytes:
    """A frame as the PNG file the generator writes (the same bytes for the same frame)."""
    buffer = io.BytesIO()
    frame.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _intact(path: Path, size: object, digest: object, check_digest: bool) -> bool:
    """Whether ``path`` is a regular file of the recorded size and, with ``check_digest``, SHA-256 digest."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size != size:
            return False
        return not check_digest or hashlib.sha256(path.read_bytes()).hexdigest() == digest
    except OSError:
        return False


def _repair(folder: Path, manifest: dict) -> None:
    """Draw again the generated images that differ from the manifest's record: another size (truncated,
    emptied, deleted) or other bytes of the same size (damaged in place; manifests of older course versions
    record sizes only).

    Says so in one line even when the caller asked for quiet: a damaged file is worth knowing about. A redrawn
    image whose bytes still differ from the record (another Pillow may compress differently) is recorded in
    the manifest, so that it is not drawn again on every call.
    """
    settings = manifest["settings"]
    sizes = dict(manifest["sizes"]) if isinstance(manifest.get("sizes"), dict) else {}
    check_digests = isinstance(manifest.get("digests"), dict)
    digests = dict(manifest["digests"]) if check_digests else {}
    damaged: dict[tuple[str, int], list[str]] = {}
    for name in settings["classes"]:  # the expected files, not names read from the manifest
        for track in range(settings["tracks_per_class"]):
            for index in range(settings["frames_per_track"]):
                relative = f"{name}/{track:05d}_{index:05d}.png"
                if not _intact(folder / relative, sizes.get(relative), digests.get(relative), check_digests):
                    damaged.setdefault((name, track), []).append(relative)
    if not damaged:
        return
    names = [relative for files in damaged.values() for relative in files]
    shown = ", ".join(str(folder / name) for name in names[:3]) + (
        f", +{len(names) - 3} more" if len(names) > 3 else "")
    messages.warn(f"⚠️ {len(names)} generated image(s) are damaged or missing ({shown}): drawing them again.")
    recorded = True
    for (name, track), files in damaged.items():
        frames = _track_frames(name, _track_rng(settings["seed"], name, track), settings["frames_per_track"])
        for index, frame in enumerate(frames):
            relative = f"{name}/{track:05d}_{index:05d}.png"
            if relative in files:
                data = _png_bytes(frame)
                with atomic_write(folder / relative) as temporary:
                    Path(temporary).write_bytes(data)
                digest = hashlib.sha256(data).hexdigest()
                if sizes.get(relative) != len(data) or (check_digests and digests.get(relative) != digest):
                    sizes[relative], digests[relative], recorded = len(data), digest, False
    if not recorded:
        record = {**manifest, "sizes": sizes, **({"digests": digests} if check_digests else {})}
        with contextlib.suppress(OSError):  # a read-only folder: the images are right, only the record is old
            write_json_atomic(folder / MANIFEST_NAME, record)


def generate_signs(
    root: Path | str,
    *,
    classes: Sequence[str] = ALL_SIGNS,
    tracks_per_class: int,
    frames_per_track: int,
    seed: int = 0,
    verbose: bool = True,
) -> Path:
    """Write a GTSRB-like image folder of synthetic signs under ``root`` and return it.

    The folder ``root/<settings-hash>`` holds one sub-folder per class with ``tracks_per_class`` tracks of
    ``frames_per_track`` frames each, named ``<track:05d>_<frame:05d>.png``. The same settings always give
    the same images (byte for byte), and a second call finds the finished folder and returns at once.
    The folder is assembled under a temporary name and renamed when complete, so an interrupted run never
    leaves a folder that looks finished; the temporary folders of killed runs are removed by the next call
    (:mod:`course_utils.cache_folders`). A folder at that name without a readable manifest is not the course's:
    it is named, with the fix, and left alone. The manifest records every image's size and SHA-256 digest: an
    image that differs later (truncated, emptied, deleted, or damaged in place) is named and drawn again.
    """
    unknown = [name for name in classes if name not in ALL_SIGNS]
    if unknown:
        raise ValueError(f"Unknown sign types {unknown}: choose from {', '.join(ALL_SIGNS)}.")
    if tracks_per_class < 1 or frames_per_track < 1:
        raise ValueError("tracks_per_class and frames_per_track must be at least 1.")
    settings = _settings(classes, tracks_per_class, frames_per_track, seed)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]

    def draw(partial: Path) -> dict:
        from course_utils.progress import close_progress_bar, open_progress_bar

        bar = open_progress_bar(total=len(settings["classes"]) * tracks_per_class * frames_per_track,
                                description="Drawing synthetic signs", unit="image", show=verbose)
        sizes: dict[str, int] = {}
        digests: dict[str, str] = {}
        try:
            for name in settings["classes"]:
                (partial / name).mkdir(parents=True)
                for track in range(tracks_per_class):
                    frames = _track_frames(name, _track_rng(seed, name, track), frames_per_track)
                    for index, frame in enumerate(frames):
                        relative = f"{name}/{track:05d}_{index:05d}.png"
                        data = _png_bytes(frame)
                        (partial / relative).write_bytes(data)
                        sizes[relative], digests[relative] = len(data), hashlib.sha256(data).hexdigest()
                    bar.update(frames_per_track)
        finally:
            close_progress_bar(bar)
        return {"counts": {name: tracks_per_class * frames_per_track for name in settings["classes"]},
                "sizes": sizes, "digests": digests}

    return build_folder_once(Path(root).expanduser() / digest, settings, draw, repair=_repair,
                             not_ours="a folder of synthetic signs the course made", verbose=verbose)
