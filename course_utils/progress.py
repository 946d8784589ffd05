"""Progress bars that leave one line of plain text behind when they finish.

In JupyterLab, Colab and VS Code, ``tqdm.auto`` draws a bar as a widget. A widget lives only while its kernel
does: a notebook reopened later shows "Error displaying widget: model not found", a notebook executed by
papermill keeps the text of the bar's first moment (``features:   0%|  | 0/12``), and an HTML export shows an
empty box. So the bars of the course are shown under a display id, and when a bar closes, that display is
replaced by one line of text that every viewer shows::

    features: 12/12 batches in 3.1 s

and the widget itself is closed. Where ``tqdm.auto`` draws a text bar instead (terminals, logs, Jupyter
without ``ipywidgets``), the bar's last state already is such a line, and it is left as it is.

    bar = open_progress_bar(total=len(loader), description="features", unit="batch")
    for batch in loader:
        ...
        bar.update(1)
    close_progress_bar(bar)  # or: with progress_bar(total=..., description=...) as bar:
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from course_utils import messages

__all__ = ["close_progress_bar", "is_widget_bar", "open_progress_bar", "progress_bar", "progress_summary"]


def is_widget_bar(bar: Any) -> bool:
    """Whether ``bar`` (a tqdm bar, or its class) is drawn as a Jupyter widget (``tqdm.notebook``)."""
    bar_class = bar if isinstance(bar, type) else type(bar)
    return any(cls.__module__ == "tqdm.notebook" for cls in bar_class.__mro__)


def open_progress_bar(*, total: int | None, description: str, unit: str = "batch", show: bool = True,
                      **options: Any) -> Any:
    """A ``tqdm.auto`` bar counting to ``total``; ``show=False`` gives a silent one, and so does
    ``messages.set_messages("warnings")`` or ``"none"`` for every bar. Close it with :func:`close_progress_bar`,
    which leaves one line of text in place of a widget bar.

    ``options`` go to tqdm (``initial``, ``mininterval``, ``dynamic_ncols``, ...).
    """
    import tqdm.auto

    bar_class = tqdm.auto.tqdm
    show = show and messages.shows_progress()
    settings = {"total": total, "desc": description, "unit": unit, "disable": not show, **options}
    if not (show and is_widget_bar(bar_class)):
        return bar_class(**settings)
    from IPython import display as ipython_display

    bar = bar_class(**settings, display=False)  # shown here instead, with an id to replace it later
    bar.summary_display = ipython_display.display(bar.container, display_id=True)
    return bar


def _plural(unit: str, count: float) -> str:
    if count == 1:
        return unit
    return unit + ("es" if unit.endswith(("s", "x", "z", "sh", "tch")) else "s")  # batches, epochs


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s"


def progress_summary(bar: Any) -> str:
    """One line saying what ``bar`` counted and how long it took: ``"features: 12/12 batches in 3.1 s"``.

    A bar that stopped before its total says so (``"features: stopped after 5 of 12 batches, 1.2 s"``); the
    bar's postfix (latest metrics), if any, follows after a semicolon.
    """
    state = bar.format_dict
    done, total, unit = state["n"], state["total"], state["unit"]
    elapsed = _duration(state["elapsed"])
    name = f"{bar.desc}: " if bar.desc else ""
    if total and done < total:
        line = f"{name}stopped after {done:g} of {total:g} {_plural(unit, total)}, {elapsed}"
    else:
        counted = f"{done:g}/{total:g}" if total else f"{done:g}"
        line = f"{name}{counted} {_plural(unit, total or done)} in {elapsed}"
    return f"{line}; {bar.postfix}" if bar.postfix else line


def close_progress_bar(bar: Any, summary: str | None = None) -> None:
    """Close ``bar``; a widget bar is replaced by one line of text and its widget closed.

    ``summary`` is that line; by default :func:`progress_summary`. Closing twice is harmless: the second
    call changes nothing.
    """
    display = getattr(bar, "summary_display", None)
    line = summary if summary is not None or display is None else progress_summary(bar)
    bar.close()
    if display is not None:
        bar.summary_display = None
        display.update({"text/plain": line}, raw=True)  # the saved notebook keeps this line, not the widget
    if is_widget_bar(bar) and hasattr(bar, "container"):
        bar.container.close()  # frees the widget in the kernel and in the browser


@contextmanager
def progress_bar(*, total: int | None, description: str, unit: str = "batch", show: bool = True,
                 **options: Any) -> Iterator[Any]:
    """:func:`open_progress_bar` in a ``with`` block, closed with :func:`close_progress_bar` at its end
    (also when the block stops with an error: the line then says where it stopped)."""
    bar = open_progress_bar(total=total, description=description, unit=unit, show=show, **options)
    try:
        yield bar
    finally:
        close_progress_bar(bar)
