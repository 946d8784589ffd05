"""Safe file writing: a file is either the old version or the complete new one, never half-written.

Every file the course writes for a user (checkpoints, metrics, CSVs, notebooks, data-set manifests) goes
through :func:`atomic_write`, so that a run interrupted mid-save (Ctrl+C, a dead Colab runtime) leaves the
previous version intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "display_path", "ensure_folder", "is_utf8_name", "printable_name", "write_json_atomic",
           "write_text_atomic"]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def printable_name(name: str | os.PathLike[str]) -> str:
    """A file name safe to print or write as UTF-8: bytes that are not UTF-8 become ``\\xNN`` escapes.

    Linux allows any bytes in names; Python keeps the undecodable ones as "surrogates", which ``print``
    and UTF-8 files refuse (``UnicodeEncodeError``).
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` as a lesson prints it: relative to the working folder when inside it, else with ``~`` for the
    home folder, else as given (undecodable bytes escaped as in :func:`printable_name`).

    Printed paths then read the same on every machine (``outputs/01_cnn_from_scratch/metrics.json``,
    ``~/.cache/transfer-course/data``) and do not reveal a user's folders in shared notebooks.
    """
    given = Path(path).expanduser()
    if not given.is_absolute():
        return printable_name(given.as_posix())
    absolute = Path(os.path.abspath(given))
    bases = [Path(os.getcwd())]
    with contextlib.suppress(OSError):
        bases.append(Path(os.path.realpath(os.getcwd())))
    for base in bases:
        with contextlib.suppress(ValueError):
            relative = absolute.relative_to(base)
            return printable_name(relative.as_posix()) if relative.parts else "."
    with contextlib.suppress(RuntimeError, KeyError):
        home = Path.home()
        if str(home) not in ("", "/"):
            with contextlib.suppress(ValueError):
                return printable_name((Path("~") / absolute.relative_to(home)).as_posix())
    return printable_name(absolute.as_posix())


def is_utf8_name(name: str | os.PathLike[str]) -> bool:
    """Whether a file name is valid UTF-8 (on Linux a name may be any bytes)."""
    try:
        os.fsencode(name).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def ensure_folder(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` (and its parents) unless it exists; say which path is a file when one is in the way.

    ``Path.mkdir`` alone answers a regular file on the way with a bare ``FileExistsError: File exists``.
    """
    folder = Path(folder)
    for candidate in (folder, *folder.parents):
        if candidate.exists() or candidate.is_symlink():
            if not candidate.is_dir():
                where = "" if candidate == folder else f"Cannot create {folder}: "
                raise NotADirectoryError(f"{where}{candidate} is a file, not a folder; choose another folder, "
                                         "or move that file away.")
            break
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    Write whatever you like to the yielded path (``torch.save``, ``DataFrame.to_csv``, ...). If the block
    raises, the temporary file is removed and ``path`` is untouched. The temporary file lives in the same
    folder so that the final :func:`os.replace` is atomic on every operating system.
    """
    target = Path(path)
    ensure_folder(target.parent)
    handle, temporary_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        yield temporary
        # mkstemp creates files readable by their owner only; give the result ordinary permissions.
        os.chmod(temporary, 0o666 & ~_current_umask())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_write(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically and return the path."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
