"""How a solution notebook marks its exercises, read by ``course build`` and by ``checks.solution(N)``.

An exercise cell starts with ``# Exercise N: <title>``; each answer sits between ``### BEGIN SOLUTION`` and
``### END SOLUTION``, and starts with ``# Reference: <one line>``, the line that takes the course package's
answer instead. ``course_tools.stripper`` turns the regions into stubs for the student notebooks, and
``course_utils.hints`` reads them back to show an answer; both use the patterns here, so the notation has
one definition.
"""

from __future__ import annotations

import re

__all__ = ["BEGIN_LINE", "BEGIN_MARKER", "END_LINE", "END_MARKER", "EXERCISE_LINE", "REFERENCE_LINE",
           "REFERENCE_PREFIX", "lines_in_solution_regions"]

BEGIN_MARKER = "### BEGIN SOLUTION"
END_MARKER = "### END SOLUTION"
#: The comment, first in a solution region, that names the one line taking the package's answer instead.
REFERENCE_PREFIX = "# Reference:"

BEGIN_LINE = re.compile(r"^(?P<indent>[ \t]*)###\s*BEGIN SOLUTION\s*$")
END_LINE = re.compile(r"^[ \t]*###\s*END SOLUTION\s*$")
REFERENCE_LINE = re.compile(r"^(?P<indent>[ \t]*)#\s*Reference:\s*(?P<line>\S.*?)\s*$")
EXERCISE_LINE = re.compile(r"^\s*#\s*Exercise(?:\s+(?P<number>\d+))?\s*:\s*(?P<title>\S.*?)\s*$")


def lines_in_solution_regions(source: str) -> list[str]:
    """The lines between each ``### BEGIN SOLUTION`` and its ``### END SOLUTION`` in ``source``, in order,
    without trailing spaces (blank lines kept)."""
    lines: list[str] = []
    inside = False
    for line in source.splitlines():
        if BEGIN_LINE.match(line):
            inside = True
        elif END_LINE.match(line):
            inside = False
        elif inside:
            lines.append(line.rstrip())
    return lines
