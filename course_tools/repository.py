"""The course's repository address: data in the ``pyproject.toml`` of the course being built, never Python source.

The badges and the set-up cell of every notebook point at one GitHub repository: the ``Repository`` entry of
``[project.urls]`` in the ``pyproject.toml`` beside ``solutions/`` (:func:`repository_url`). Publishing a fork
rewrites that one line (:func:`set_repository_url`, ``course build --repository URL``) in the repository being
built, never in the checkout the course package happens to be imported from.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from course_utils.files import atomic_write

__all__ = ["RepositoryError", "checked_repository_url", "course_root", "repository_url", "set_repository_url"]

# GitHub's rules: an owner is letters, digits and single hyphens; a repository name letters, digits, ".", "_", "-".
_GITHUB_URL = re.compile(r"^https://github\.com/(?P<owner>[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38})/"
                         r"(?P<name>[A-Za-z0-9._-]{1,100})$")
# The [project.urls] table of a pyproject.toml (up to the next table), and its Repository = "..." line.
_URLS_TABLE = re.compile(r"^\[project\.urls\][ \t]*(?:#[^\n]*)?$(?P<body>.*?)(?=^[ \t]*\[|\Z)",
                         re.MULTILINE | re.DOTALL)
_REPOSITORY_ENTRY = re.compile(r'^(?P<key>[ \t]*"?Repository"?[ \t]*=[ \t]*)"(?P<url>[^"\n]*)"'
                               r'(?P<rest>[ \t]*(?:#.*)?)$', re.MULTILINE)
_PROJECT_FILE = "pyproject.toml"


class RepositoryError(ValueError):
    """A repository address that is not a GitHub repository, or a ``pyproject.toml`` without one."""


def checked_repository_url(url: str, where: str = "--repository") -> str:
    """``url`` as ``https://github.com/<owner>/<name>`` (a trailing ``/`` or ``.git`` dropped), else
    :class:`RepositoryError`.

    The badges open the notebooks through GitHub, so only a GitHub address will do; ``where`` names the value
    in the error (the option, or the file it was read from).
    """
    cleaned = url.strip().removesuffix("/").removesuffix(".git") if isinstance(url, str) else ""
    match = _GITHUB_URL.match(cleaned)
    if not match or ".." in match.group("name") or match.group("name") == ".":
        raise RepositoryError(f"{where} {url!r} is not a GitHub repository address: use "
                         "https://github.com/<owner>/<name>, the fork's page on GitHub.")
    return cleaned


def _course_checkout() -> Path:
    """The checkout these tools run from: the folder above ``course_tools/``."""
    return Path(__file__).resolve().parents[1]


def _repository_entry(path: Path) -> tuple[str, int, re.Match[str]]:
    """A ``pyproject.toml``'s text, and its one ``Repository = "..."`` line of ``[project.urls]`` (with the
    line's offset in the text)."""
    if path.is_symlink() or not path.is_file():
        raise RepositoryError(f"{path} is not a regular file: the course's repository address lives in the "
                         "pyproject.toml of the course repository, under [project.urls].")
    text = path.read_text(encoding="utf-8")
    entries = [(table.start("body"), entry) for table in _URLS_TABLE.finditer(text)
               for entry in _REPOSITORY_ENTRY.finditer(table.group("body"))]
    if len(entries) != 1:
        raise RepositoryError(f"{path} has no single 'Repository = \"https://github.com/<owner>/<name>\"' line under "
                         "[project.urls]: add it there (the address course build writes into every notebook).")
    offset, entry = entries[0]
    return text, offset, entry


def repository_url(root: str | Path | None = None) -> str:
    """The GitHub address of the course repository ``root``: ``Repository`` in its ``pyproject.toml``.

    ``root`` is the folder that holds ``solutions/``. When it has no ``pyproject.toml`` (solutions copied to
    a scratch folder), the address is read from the checkout these tools run from; it is only ever written
    by :func:`set_repository_url`, into the repository being built.
    """
    folder = Path(root) if root is not None else _course_checkout()
    if not (folder / _PROJECT_FILE).exists() and not (folder / _PROJECT_FILE).is_symlink():
        folder = _course_checkout()
    path = folder / _PROJECT_FILE
    _, _, entry = _repository_entry(path)
    return checked_repository_url(entry.group("url"), where=f"{path}: Repository")


def course_root(solutions_dir: str | Path) -> Path:
    """The course repository being built: the folder holding ``solutions_dir`` (as given, links not followed)."""
    return Path(os.path.abspath(solutions_dir)).parent


def set_repository_url(url: str, solutions_dir: str | Path = "solutions") -> Path:
    """Point the course at another repository (a fork): rewrite its address in the repository being built.

    That is the ``Repository`` line under ``[project.urls]`` in the ``pyproject.toml`` beside
    ``solutions_dir``, and only that line: no Python source, no other checkout (the one the course package
    is imported from may be another). ``url`` must be ``https://github.com/<owner>/<name>``. A ``build`` of
    the same ``solutions_dir`` that follows writes every badge and set-up cell with it. Returns the file.
    """
    url = checked_repository_url(url)
    path = course_root(solutions_dir) / _PROJECT_FILE
    if not path.exists() and not path.is_symlink():
        raise RepositoryError(f"No {_PROJECT_FILE} in {path.parent}: --repository rewrites the address of the course "
                         f"repository that holds {solutions_dir}; run it in a clone of the course.")
    text, offset, entry = _repository_entry(path)
    line = f'{entry.group("key")}"{url}"{entry.group("rest")}'
    updated = text[:offset + entry.start()] + line + text[offset + entry.end():]
    with atomic_write(path) as temporary:
        temporary.write_text(updated, encoding="utf-8")
    return path
