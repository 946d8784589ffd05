"""Errors shown as one line in Jupyter instead of a traceback: the self-checks' :class:`ExerciseError`, and
chosen errors of a library (PyTorch's, say) through an IPython handler (:func:`show_in_one_line`).

The cell still fails in both cases, so Run All, papermill and nbval stop there. Outside IPython nothing here
changes how errors look.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ExerciseError", "current_shell", "show_in_one_line"]

#: (id of a shell, the function that makes its lines) -> the handler this module installed there.
_INSTALLED_HANDLERS: dict[tuple[int, Any], Any] = {}


class ExerciseError(AssertionError):
    """An exercise's answer does not work yet; the message says what is wrong and hints at the fix.

    IPython and Jupyter show what ``_render_traceback_`` returns instead of a traceback: the ❌ message
    alone, since the traceback would only lead into this file, not to the student's mistake. The cell
    still fails, so Run All, papermill and nbval stop there.
    """

    def _render_traceback_(self) -> list[str]:
        return str(self).splitlines()


def current_shell() -> Any | None:
    """The IPython shell this code runs in, or ``None`` (plain Python, or IPython never imported)."""
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    return get_ipython()


def show_in_one_line(shell: Any, kind: type[BaseException],
                     line_for: Callable[[BaseException, Mapping[str, Any]], str | None]) -> bool:
    """Make ``shell`` show an error of ``kind`` as the one line ``line_for(error, user_namespace)`` returns.

    Errors for which ``line_for`` returns ``None`` keep their usual traceback. IPython keeps one custom
    handler; this one takes over the exceptions of the handler already installed (``environment``'s for the
    exercise stubs, say) and passes them on to it. Calling this again reinstalls the handler only when
    something else replaced it. Returns whether it is installed (``False`` without a shell).
    """
    if shell is None:
        return False
    key = (id(shell), line_for)
    if _INSTALLED_HANDLERS.get(key) is getattr(shell, "CustomTB", None):
        return True
    previous_types = tuple(shell.custom_exceptions)
    previous = shell.CustomTB

    def handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> list[str]:
        line = line_for(value, shell.user_ns) if isinstance(value, kind) else None
        if line is not None:
            shell._showtraceback(etype, value, [line])  # the cell still fails: Run All stops here
            return [line]
        if previous_types and isinstance(value, previous_types):
            return previous(etype, value, tb, tb_offset)
        stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
        shell._showtraceback(etype, value, stb)
        return stb

    shell.set_custom_exc(tuple(dict.fromkeys((*previous_types, kind))), handler)
    _INSTALLED_HANDLERS[key] = shell.CustomTB
    return True
