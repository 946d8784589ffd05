"""Every line the course package prints goes through here, so one switch quiets all of them.

The package talks to the student in short lines: ``ℹ️`` for what it decided on its own (a folder ignored, a
class dropped), ``⚠️`` for something it skipped, recomputed or could not read, ``✅`` for a passed check, and
the findings' verdicts. Each function also takes its own ``verbose=`` for a single call; this switch is for a
whole notebook, a script or a test run::

    from course_utils import messages
    messages.set_messages("warnings")   # only the ⚠️ lines (and no progress bars)
    messages.set_messages("none")       # nothing at all
    messages.set_messages("all")        # back to the default

    with messages.quiet_messages():     # "warnings" for one block, restored after it (also after an error)
        split = load_dataset(...)

Python's ``warnings`` module is not used for these lines on purpose: it prints the file and line of the
package that raised it (a path on the student's machine) and shows each message only once per place.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

__all__ = ["LEVELS", "current_level", "quiet_messages", "say", "set_messages", "shows_progress", "warn"]

Level = Literal["all", "warnings", "none"]
LEVELS: tuple[str, ...] = ("all", "warnings", "none")
# The starting level can come from the environment (COURSE_MESSAGES=warnings), e.g. for a workshop's scripts.
_ENVIRONMENT_VARIABLE = "COURSE_MESSAGES"


def _checked(level: str, where: str) -> Level:
    if level not in LEVELS:
        raise ValueError(f"{where} is {level!r}; choose one of {', '.join(repr(name) for name in LEVELS)}.")
    return level  # type: ignore[return-value]


_level: Level = _checked(os.environ.get(_ENVIRONMENT_VARIABLE, "all"), _ENVIRONMENT_VARIABLE)


def set_messages(level: str) -> None:
    """Choose what the package prints from now on: ``"all"`` (the default), ``"warnings"`` (only the ``⚠️``
    lines; progress bars are hidden too) or ``"none"``."""
    global _level
    _level = _checked(level, "The messages level")


def current_level() -> str:
    """The level :func:`set_messages` chose last (``"all"`` unless changed)."""
    return _level


@contextmanager
def quiet_messages(level: str = "warnings") -> Iterator[None]:
    """Print at ``level`` inside the ``with`` block; the level before it comes back afterwards, also when the
    block stops with an error."""
    before = _level
    set_messages(level)
    try:
        yield
    finally:
        set_messages(before)


def say(line: str) -> None:
    """Print an information line (``ℹ️``, ``✅``, a verdict, a summary); silent at ``"warnings"`` and ``"none"``."""
    if _level == "all":
        print(line)


def warn(line: str) -> None:
    """Print a ``⚠️`` line (something skipped, recomputed or unreadable); silent only at ``"none"``."""
    if _level != "none":
        print(line)


def shows_progress() -> bool:
    """Whether progress bars are drawn (only at ``"all"``)."""
    return _level == "all"
