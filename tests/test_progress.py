"""Progress bars leave one line of text behind (issue 21, item 7): a widget outlives neither its kernel nor an
export, so a finished bar must be replaced by text that every viewer shows."""

from __future__ import annotations

import sys

import nbformat
import pytest
from helpers import python_notebook

from course_utils import progress


class Display:
    """What the notebook's output area holds: each displayed object, updated in place by its display id."""

    def __init__(self) -> None:
        self.outputs: list[dict] = []

    def display(self, obj, *, display_id=None, **options):
        self.outputs.append({"shown": obj, "display_id": display_id})
        return _Handle(self, len(self.outputs) - 1)


class _Handle:
    def __init__(self, area: Display, index: int) -> None:
        self.area, self.index = area, index

    def update(self, obj, raw=False, **options):
        self.area.outputs[self.index]["shown"] = obj if raw else {"text/plain": repr(obj)}


def simulate_notebook(monkeypatch) -> Display:
    """Make ``tqdm.auto`` give the widget bar it gives inside Jupyter, shown in a fake output area."""
    import IPython.display
    import tqdm.asyncio
    import tqdm.auto
    import tqdm.notebook

    class JupyterBar(tqdm.notebook.tqdm, tqdm.asyncio.tqdm):  # what tqdm.auto gives inside Jupyter
        pass

    area = Display()
    monkeypatch.setattr(tqdm.auto, "tqdm", JupyterBar)
    monkeypatch.setattr(IPython.display, "display", area.display)
    return area


def widget_is_closed(widget) -> bool:
    return widget.comm is None  # ipywidgets drops the comm (the link to the browser) when a widget closes


def test_a_finished_widget_bar_leaves_a_line_of_text_and_closes_its_widget(monkeypatch):
    area = simulate_notebook(monkeypatch)
    bar = progress.open_progress_bar(total=3, description="features", unit="batch")
    assert len(area.outputs) == 1 and area.outputs[0]["display_id"]  # shown once, with an id to replace it
    widget = area.outputs[0]["shown"]
    assert not widget_is_closed(widget)
    for _ in range(3):
        bar.update(1)
    progress.close_progress_bar(bar)
    shown = area.outputs[0]["shown"]
    assert set(shown) == {"text/plain"}  # no widget left in the output: every viewer shows this text
    assert shown["text/plain"].startswith("features: 3/3 batches in ") and shown["text/plain"].endswith(" s")
    assert widget_is_closed(widget)
    progress.close_progress_bar(bar)  # a second close changes nothing
    assert area.outputs[0]["shown"] is shown and len(area.outputs) == 1


def test_an_interrupted_bar_says_where_it_stopped_and_keeps_its_metrics(monkeypatch):
    area = simulate_notebook(monkeypatch)
    with pytest.raises(KeyboardInterrupt), progress.progress_bar(total=12, description="epochs", unit="epoch") as bar:
        bar.update(5)
        bar.set_postfix({"loss": "0.1234"})
        raise KeyboardInterrupt
    line = area.outputs[0]["shown"]["text/plain"]
    assert line.startswith("epochs: stopped after 5 of 12 epochs, ") and line.endswith("; loss=0.1234")


def test_a_given_summary_replaces_the_default_line(monkeypatch):
    area = simulate_notebook(monkeypatch)
    bar = progress.open_progress_bar(total=1, description="epochs", unit="epoch")
    bar.update(1)
    progress.close_progress_bar(bar, "1 epoch(s) in 2 s; last epoch: loss 0.1000")
    assert area.outputs[0]["shown"] == {"text/plain": "1 epoch(s) in 2 s; last epoch: loss 0.1000"}


def test_text_bars_and_hidden_bars_show_nothing_extra(monkeypatch, capsys):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *args, **kwargs: shown.append(args))
    bar = progress.open_progress_bar(total=2, description="predict", unit="image", file=sys.stdout)
    assert not progress.is_widget_bar(bar)  # outside Jupyter tqdm.auto draws text
    bar.update(2)
    progress.close_progress_bar(bar)
    assert "predict: 100%" in capsys.readouterr().out and shown == []  # its last state is the line
    silent = progress.open_progress_bar(total=2, description="predict", show=False)
    progress.close_progress_bar(silent)
    assert capsys.readouterr().out == "" and shown == []


def test_the_summary_counts_in_plain_words():
    class Bar:
        desc, postfix = "features", None
        format_dict = {"n": 12, "total": 12, "unit": "batch", "elapsed": 3.14}

    assert progress.progress_summary(Bar()) == "features: 12/12 batches in 3.1 s"
    Bar.format_dict = {"n": 1, "total": None, "unit": "image", "elapsed": 125.0}
    assert progress.progress_summary(Bar()) == "features: 1 image in 2 min 5 s"


@pytest.mark.notebooks
def test_an_executed_notebook_keeps_the_line_not_the_widget(tmp_path):
    """What papermill, GitHub, nbconvert's HTML and a reopened notebook see: the outputs saved in the file."""
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell

    code = ("from course_utils import loaders\n"
            "for batch in loaders.batches_with_progress(range(4), description='features'):\n"
            "    pass\n")
    nb = python_notebook([new_code_cell(code)])
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nbformat.from_dict(nb).cells[0].outputs
    kinds = [sorted(output.get("data", {})) for output in outputs]
    assert kinds == [["text/plain"]], outputs  # one display, now text alone: no widget view to lose
    assert outputs[0]["data"]["text/plain"].startswith("features: 4/4 batches in ")
