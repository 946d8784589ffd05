"""A lesson's parameters: the cell tagged ``parameters``, read with papermill's own inspection.

``course params`` prints them with papermill's ``--help-notebook`` layout (:func:`show_parameters`);
``course run -p NAME VALUE`` checks names and values against them (:func:`read_parameters`).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

__all__ = ["PARAMETERS_TAG", "Parameter", "read_parameters", "show_parameters"]

#: Tag of the cell that holds a notebook's parameters (papermill's convention).
PARAMETERS_TAG = "parameters"


class Parameter(NamedTuple):
    """One entry of a notebook's ``parameters`` cell, as ``papermill --help-notebook`` shows it.

    ``type`` and ``default`` are source text (``"int"``, ``"'gtsrb'"``); ``type`` is ``"None"`` when the
    line has no annotation.
    """

    name: str
    type: str
    default: str
    help: str


def read_parameters(notebook_path: str | Path) -> list[Parameter]:
    """The parameters of a notebook's cell tagged ``parameters``, in order, as papermill infers them.

    A thin wrapper over :func:`papermill.inspect_notebook` (the inspection behind ``papermill
    --help-notebook``); an empty list when the notebook has no parameters cell.
    """
    from papermill import inspect_notebook  # papermill is slow to import

    return [Parameter(p["name"], p["inferred_type_name"], p["default"], p["help"])
            for p in inspect_notebook(str(notebook_path)).values()]


def show_parameters(notebook_path: str | Path, lesson: str) -> int:
    """Print a lesson's parameters with papermill's ``--help-notebook`` layout; 1 without a parameters cell.

    The usage line shows how to set them with ``course run``.
    """
    import click
    from papermill.inspection import display_notebook_help

    command = click.Command("course run", options_metavar=f"{lesson} [-p NAME VALUE]...")
    with click.Context(command, info_name="course run") as context:
        return display_notebook_help(context, str(notebook_path), None)
