"""Safe file writing: a file is either the old version or the complete new one, never half-written.

Every file the course writes for a user (checkpoints, metrics, CSVs, notebooks, data-set manifests) goes
through :func:`atomic_write`, so that a run interrupted mid-save (Ctrl+C, a dead Colab runtime) leaves the
previous version intact. It replaces only a regular file: a folder, a device such as ``/dev/full``, a named pipe
or a symbolic link there is refused with one line, never swapped for a plain file. :func:`check_writable_file`
lets a command check its output path before it starts the work; :func:`is_system_folder` names the folders
(``/``, ``/usr``, the home folder itself) that are never scanned as a data set.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["SYSTEM_FOLDERS", "NotARegularFileError", "atomic_write", "check_folder_path", "check_writable_file",
           "display_path", "ensure_folder", "is_system_folder", "is_utf8_name", "printable_name", "write_json_atomic",
           "write_text_atomic"]


class NotARegularFileError(OSError):
    """The course writes a file only where a regular file or nothing is: never over a folder, a device, a named
    pipe (FIFO), a socket or (unless asked) a symbolic link."""


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


#: Folders that hold an operating system or every user's files, never one data set: scanning one of them would
#: walk the whole file system (``DATASET=/``). The home folder itself is refused too (see :func:`is_system_folder`).
SYSTEM_FOLDERS: frozenset[str] = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/opt", "/proc", "/root", "/run",
    "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local", "/usr/share", "/var",
    "/Applications", "/Library", "/System", "/Users", "/Volumes", "/private",
})


def is_system_folder(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` (links followed) is a file system's root, a system folder of :data:`SYSTEM_FOLDERS`,
    or the home folder itself: places that hold far more than a data set, so the course never scans them."""
    resolved = Path(os.path.realpath(Path(folder).expanduser()))
    if resolved == Path(resolved.anchor) or resolved.as_posix() in SYSTEM_FOLDERS:
        return True
    with contextlib.suppress(RuntimeError, KeyError, OSError):
        return resolved == Path(os.path.realpath(Path.home()))
    return False


def _kind_of(mode: int) -> str:
    """What a file-system entry is, in words, from its ``st_mode``."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "a regular file"


def check_folder_path(folder: str | os.PathLike[str]) -> None:
    """Raise ``NotADirectoryError`` when ``folder`` or a folder above it exists but is not a folder.

    Nothing is created: a command checks its output folder with this before it starts any work.
    """
    folder = Path(folder)
    for candidate in (folder, *folder.parents):
        if candidate.exists() or candidate.is_symlink():
            if not candidate.is_dir():
                kind = _kind_of(os.lstat(candidate).st_mode).replace("a regular file", "a file")
                where = "" if candidate == folder else f"Cannot create {printable_name(folder)}: "
                raise NotADirectoryError(f"{where}{printable_name(candidate)} is {kind}, not a folder; choose "
                                         "another folder, or move that file away.")
            return


def ensure_folder(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` (and its parents) unless it exists; say which path is a file when one is in the way.

    ``Path.mkdir`` alone answers a regular file on the way with a bare ``FileExistsError: File exists``.
    """
    folder = Path(folder)
    check_folder_path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _refuse_unsafe_target(target: Path, given: Path) -> None:
    """Raise :class:`NotARegularFileError` unless ``target`` is a regular file or does not exist."""
    try:
        mode = os.lstat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there (a file on the way is ensure_folder's to report)
    if stat.S_ISREG(mode):
        return
    shown = printable_name(given)
    if stat.S_ISLNK(mode):
        raise NotARegularFileError(
            f"{shown} is a symbolic link (to {printable_name(os.readlink(target))}): the course does not write "
            "through links; give the path of the file it points to, or remove the link first.")
    through = "" if target == given else f" (the link leads to {printable_name(target)})"
    fix = ("name a file inside it, or another path" if stat.S_ISDIR(mode)
           else "give the path of a new or existing regular file instead")
    raise NotARegularFileError(f"{shown} is {_kind_of(mode)}{through}, not a regular file: the course writes "
                               f"only regular files; {fix}.")


def check_writable_file(path: str | os.PathLike[str], *, follow_symlinks: bool = False) -> Path:
    """Check, before any work, that a file can be written at ``path``; return the path that will be written.

    Raises one clear error naming the path and the fix: :class:`NotARegularFileError` for a folder, a device, a
    named pipe or a link there (see :func:`atomic_write`), ``NotADirectoryError`` when a file lies on the way,
    ``PermissionError`` (or another ``OSError``) when its folder cannot be written to. Nothing is left behind:
    the check writes an empty test file into the nearest existing folder and removes it.
    """
    given = Path(path)
    target = Path(os.path.realpath(given)) if follow_symlinks and given.is_symlink() else given
    _refuse_unsafe_target(target, given)
    check_folder_path(target.parent)
    folder = next((candidate for candidate in (target.parent, *target.parent.parents) if candidate.is_dir()),
                  target.parent)
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise type(error)(f"Cannot write {printable_name(given)}: the folder {printable_name(folder)} does not "
                          f"take new files ({reason.lower()}); choose a folder you can write to.") from None
    os.close(handle)
    os.unlink(probe)
    return target


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], *, follow_symlinks: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    Write whatever you like to the yielded path (``torch.save``, ``DataFrame.to_csv``, ...). If the block
    raises, the temporary file is removed and ``path`` is untouched. The temporary file lives in the same
    folder so that the final :func:`os.replace` is atomic on every operating system.

    Only a regular file (or nothing) is ever replaced: a folder, a device (``/dev/full``), a named pipe, a socket
    or a symbolic link at ``path`` raises :class:`NotARegularFileError` before anything is written, so that
    ``os.replace`` never swaps a device node or a link for a plain file. With ``follow_symlinks=True`` a link
    is followed and the regular file it leads to is replaced (the link stays).
    """
    given = Path(path)
    target = Path(os.path.realpath(given)) if follow_symlinks and given.is_symlink() else given
    _refuse_unsafe_target(target, given)
    ensure_folder(target.parent)
    handle, temporary_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        yield temporary
        # mkstemp creates files readable by their owner only; give the result ordinary permissions.
        os.chmod(temporary, 0o666 & ~_current_umask())
        _refuse_unsafe_target(target, given)  # again: something else may have appeared there meanwhile
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
