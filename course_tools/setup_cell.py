"""The set-up cell of the notebooks: the code of :mod:`course_tools.setup_cell_code`, filled in for a release.

``course build`` writes the cell tagged :data:`SETUP_TAG` of every notebook with :func:`setup_cell_source`:
that file from its line ``# Set-up: ...`` on, with the defaults of ``_set_up_course`` replaced by the course's
repository address, release tag and version, and the call after it. The cell's metadata
(:data:`SETUP_CELL_METADATA`) hides its source: JupyterLab and Notebook 7 show it collapsed to one line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from course_tools import setup_cell_code
from course_tools.repository import checked_repository_url, repository_url
from course_utils import __version__

__all__ = ["SETUP_CELL_METADATA", "SETUP_TAG", "release_tag", "setup_cell_source"]

#: Tag of the set-up cell, which ``course build`` rewrites.
SETUP_TAG = "setup"
#: What ``course build`` sets in the set-up cell's metadata: its source hidden (Jupyter shows a collapsed cell).
SETUP_CELL_METADATA = {"jupyter": {"source_hidden": True}}

# The first line of the cell in setup_cell_code.py, and the line that takes the values build fills in.
_FIRST_LINE = "# Set-up:"
_DEFINITION = re.compile(r'^def _set_up_course\(repository="[^"\n]*", ref="[^"\n]*", version="[^"\n]*"\):$',
                         re.MULTILINE)
_CALL = "_set_up_course()\ndel _set_up_course"


def release_tag(version: str = __version__) -> str:
    """The git tag the set-up cell installs the course from: ``v`` and the package version (``v0.1.0``)."""
    return f"v{version}"


def setup_cell_source(repository: str | None = None) -> str:
    """The source of the set-up cell (tag ``setup``): the course from ``repository`` at :func:`release_tag`.

    ``repository`` defaults to :func:`~course_tools.repository.repository_url` of the checkout these tools run
    from. On Colab or Kaggle the cell installs the course package unless this version is already installed:
    from a workshop kit when it finds one (``$COURSE_KIT``, else ``course-kit.json`` under ``/kaggle/input``,
    or ``$COURSE_KAGGLE_INPUT`` for tests), with no package index and only wheels whose SHA-256 matches the
    kit's manifest (a changed wheel stops the cell, named); otherwise from the repository at the release
    tag. A failed install prints one sentence (what failed, what to do, where pip's log is) and stops the
    notebook with a one-line error. It then links the data sets and weights of the kit (on Kaggle, of
    anything attached) into the lessons' caches. Elsewhere it does nothing. It needs only the standard
    library before the install. The code is :mod:`course_tools.setup_cell_code`.
    """
    repository = checked_repository_url(repository) if repository is not None else repository_url()
    path = Path(setup_cell_code.__file__)
    text = path.read_text(encoding="utf-8")
    start = text.find(f"\n{_FIRST_LINE}") + 1
    if start == 0 or len(_DEFINITION.findall(text)) != 1:
        raise RuntimeError(f"{path} has no line starting with {_FIRST_LINE!r} followed by one line "
                           "'def _set_up_course(repository=\"...\", ref=\"...\", version=\"...\"):': restore them.")
    values = ", ".join(f"{name}={json.dumps(value)}" for name, value in
                       (("repository", repository), ("ref", release_tag()), ("version", __version__)))
    cell = _DEFINITION.sub(lambda match: f"def _set_up_course({values}):", text[start:])
    return f"{cell.rstrip()}\n\n\n{_CALL}"
