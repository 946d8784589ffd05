"""A lesson's results: ``metrics.json`` in its output folder, read back by ``course run``'s report."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from course_utils.files import write_json_atomic

__all__ = ["METRICS_FILE", "REQUIRED_KEYS", "read_metrics", "write_metrics"]

METRICS_FILE = "metrics.json"

#: Keys every lesson's metrics.json holds; ``course run`` puts them in its report.
REQUIRED_KEYS = ("lesson", "profile", "dataset", "arch", "epochs", "seconds")


def _plain(value: Any) -> Any:
    """Turn numpy and torch scalars into plain Python numbers so that they serialise as JSON."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def write_metrics(output_dir: str | os.PathLike[str], **metrics: Any) -> Path:
    """Write a lesson's results to ``<output_dir>/metrics.json`` (atomically) and return the path.

    Pass at least the keys in :data:`REQUIRED_KEYS`; accuracies are fractions in [0, 1] named
    ``<what>_accuracy``. Missing required keys raise a ``ValueError`` that names them.
    """
    missing = [key for key in REQUIRED_KEYS if key not in metrics]
    if missing:
        raise ValueError(f"metrics.json needs {', '.join(missing)}; pass them to write_metrics(...).")
    return write_json_atomic(Path(output_dir) / METRICS_FILE, {k: _plain(v) for k, v in metrics.items()})


def read_metrics(output_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``<output_dir>/metrics.json``; an empty dict when the lesson wrote none."""
    path = Path(output_dir) / METRICS_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))
