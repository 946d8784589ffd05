"""Run All stops at the first red box, also when a cell fails right after the run began.

JupyterLab's **Run All** (and **Run Selected Cell and All Below**) sends every cell to the kernel at once; when a
cell fails, the kernel drops the requests still waiting behind it, so the first red box is where the run ends.
The kernel decides which requests count as "waiting" by what has reached its queue when the error happens, and
a request can arrive later than that (ipykernel documents the symptom under ``stop_on_error_timeout``). Seen in
the course's browser walk (ipykernel 7.4): an exercise that failed within a second of the click had the next
three cells dropped and every cell after them started, answers to later exercises included.

:func:`stop_queued_cells_after_an_error` adds the rule the kernel means, written with each request's own time:
a cell whose request was sent before the frontend could have seen the failure was queued behind it, so it is
skipped: it runs nothing and prints one line saying so. "Before it could have seen it" is: sent less than
:data:`REACTION_SECONDS` after the failed cell's request, plus the time that cell ran. The two request times come
from one clock, the browser's (each request's header ``date``), and the run time from the kernel's, so a browser
and a kernel on different machines (Colab) agree. Run All sends all its requests within a fraction of a second;
a cell you run yourself after reading the red box was sent later, and runs as usual (if you were quicker, the
line tells you to run it again).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from course_utils.ipython_errors import current_shell

__all__ = ["REACTION_SECONDS", "SKIPPED_LINE", "QueuedCellGuard", "stop_queued_cells_after_an_error"]

#: A request sent within this many seconds after the failed cell's request plus its run time was queued by Run All,
#: not sent by a person who had seen the red box.
REACTION_SECONDS = 1.0
#: What a skipped cell prints.
SKIPPED_LINE = ("⏭️ Not run: Run All had queued this cell behind the failed cell above (the first red box). "
                "Fix that cell, then run this one again.")


def _request_date(shell: Any) -> datetime | None:
    """When the frontend sent the request the kernel is running now (``None`` outside a Jupyter kernel)."""
    header = (getattr(shell, "parent_header", None) or {}).get("header") or {}
    date = header.get("date")
    if isinstance(date, str):
        try:
            date = datetime.fromisoformat(date.replace("Z", "+00:00"))
        except ValueError:
            return None
    return date if isinstance(date, datetime) else None


class QueuedCellGuard:
    """Remembers when the last failed cell was sent and how long it ran; skips the cells queued behind it.

    It holds state across cells (the last failure), hence a class. IPython calls :meth:`pre_run_cell` and
    :meth:`post_run_cell` around every cell and :meth:`skip_if_queued` on each cell's lines first.
    """

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.started: tuple[float, datetime | None] | None = None  # kernel clock, request date of this cell
        self.failure: tuple[datetime, float] | None = None  # request date of the failed cell, seconds it ran

    def pre_run_cell(self, info: Any = None) -> None:
        self.started = (time.monotonic(), _request_date(self.shell))

    def post_run_cell(self, result: Any) -> None:
        failed = getattr(result, "error_in_exec", None) is not None or \
            getattr(result, "error_before_exec", None) is not None
        if failed and self.started is not None and self.started[1] is not None:
            self.failure = (self.started[1], time.monotonic() - self.started[0])

    def queued_before_the_failure(self) -> bool:
        """Whether the request being run now was sent before the last failed cell had failed."""
        date = _request_date(self.shell)
        if self.failure is None or date is None:
            return False
        failed_date, seconds_it_ran = self.failure
        if (date.tzinfo is None) != (failed_date.tzinfo is None):
            return False
        return (date - failed_date).total_seconds() < seconds_it_ran + REACTION_SECONDS

    def skip_if_queued(self, lines: list[str]) -> list[str]:
        """An input transformer: one printed line in place of a cell queued behind a failure, else the lines."""
        if self.queued_before_the_failure():
            return [f"print({SKIPPED_LINE!r})\n"]
        return lines


def stop_queued_cells_after_an_error(shell: Any = None) -> bool:
    """In a Jupyter kernel, skip the cells that Run All had queued behind a cell that failed (see the module
    docstring). Installed once per kernel; returns whether it is installed (False outside IPython)."""
    shell = shell if shell is not None else current_shell()
    if shell is None:
        return False
    if any(isinstance(getattr(hook, "__self__", None), QueuedCellGuard) for hook in shell.input_transformers_post):
        return True
    guard = QueuedCellGuard(shell)
    shell.events.register("pre_run_cell", guard.pre_run_cell)
    shell.events.register("post_run_cell", guard.post_run_cell)
    shell.input_transformers_post.append(guard.skip_if_queued)
    return True
