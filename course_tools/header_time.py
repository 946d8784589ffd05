"""The time a lesson's header states, taken from the stored run of its solution notebook.

Each lesson's first markdown cell has a paragraph that starts with ``**Time:**``. Its first sentence is
written by ``course build`` from the notebook's own outputs: the time from the first cell's start to the last
cell's reply, as the executing kernel recorded them (``metadata.execution`` of each code cell, which
``jupyter nbconvert --execute`` and JupyterLab write). So the number a student reads is the run they see below
it, never a figure typed by hand and left behind by the next run. The rest of the paragraph is the author's.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

__all__ = ["TIME_PREFIX", "stored_run_seconds", "sync_time_line", "time_sentence"]

#: The paragraph of the header whose first sentence ``course build`` writes.
TIME_PREFIX = "**Time:**"

_STARTED, _ENDED = "iopub.execute_input", "shell.execute_reply"
#: The first sentence of the paragraph: from its prefix to the first full stop that ends a sentence.
_FIRST_SENTENCE = re.compile(re.escape(TIME_PREFIX) + r"[^\n]*?\.(?=\s|$)")


def _moment(text: Any) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def stored_run_seconds(nb: Any) -> float | None:
    """Seconds from the first code cell's start to the last code cell's reply in ``nb``'s stored run; None when
    the notebook holds no complete record (not executed, or executed by a tool that records no times)."""
    starts, ends = [], []
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        execution = cell.get("metadata", {}).get("execution", {})
        started, ended = _moment(execution.get(_STARTED)), _moment(execution.get(_ENDED))
        if started is not None and ended is not None:
            starts.append(started)
            ends.append(ended)
    if not starts:
        return None
    return (max(ends) - min(starts)).total_seconds()


def time_sentence(seconds: float) -> str:
    """The header's first sentence for a stored run of ``seconds``."""
    minutes, rest = divmod(round(seconds), 60)
    took = f"{minutes} min {rest} s" if minutes else f"{round(seconds)} s"
    return (f"{TIME_PREFIX} the run stored in this notebook took {took} with the `offline` profile on the "
            f"course's 2-core CPU, from the first cell's start to the last cell's end as the kernel recorded them.")


def sync_time_line(nb: Any) -> bool:
    """Rewrite the first sentence of the ``**Time:**`` paragraph of ``nb``'s first markdown cell from the
    stored run; whether it changed. A notebook without a stored run, or without the paragraph, is left as is."""
    seconds = stored_run_seconds(nb)
    header = next((cell for cell in nb.cells if cell.get("cell_type") == "markdown"), None)
    if seconds is None or header is None or TIME_PREFIX not in header.source:
        return False
    source = _FIRST_SENTENCE.sub(lambda _: time_sentence(seconds), header.source, count=1)
    if source == header.source:
        return False
    header.source = source
    return True
