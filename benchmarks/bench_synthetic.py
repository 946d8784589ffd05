"""How fast is the synthetic traffic-sign generator? (a benchmark, not a test)

Generates 2,000 images (the 18 sign types, 14 tracks of 8 frames: 2,016 images) into a fresh temporary
folder, then calls again with the same settings, which must find the cached folder and do no work.
Prints seconds and images per second for both. The course's target: under 15 s for 2,000 images.

    .venv/bin/python benchmarks/bench_synthetic.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from course_utils.synthetic import ALL_SIGNS, generate_signs


def main() -> None:
    settings = {"classes": ALL_SIGNS, "tracks_per_class": 14, "frames_per_track": 8, "seed": 0}
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        folder = generate_signs(Path(root), **settings, verbose=False)
        fresh = time.perf_counter() - start
        count = len(list(folder.rglob("*.png")))
        start = time.perf_counter()
        generate_signs(Path(root), **settings, verbose=False)
        cached = time.perf_counter() - start
    print(f"CPU cores: {os.cpu_count()}")
    print(f"fresh:  {count} images in {fresh:.2f} s = {count / fresh:.0f} images/s (target: 2,000 in < 15 s)")
    print(f"cached: second call in {cached * 1000:.1f} ms ({fresh / cached:.0f}x faster)")


if __name__ == "__main__":
    main()
