"""Folders the course makes once and keeps (the synthetic signs, lesson 5's practice folder): built whole or not at all.

:func:`build_folder_once` is the one way such a folder is made. It holds a lock (``.<name>.lock`` beside the
folder, :mod:`filelock`) while it looks and while it builds, so that a second notebook asking for the same folder
waits for the first and then finds it finished instead of drawing it again beside it. The images are written into
a hidden ``.<name>.partial-<random>`` folder that carries the course's marker (:data:`MARKER_FILE`), the manifest
last, and the finished folder replaces it in one ``os.replace``: an interrupted run never leaves a folder that
looks finished.

A run killed half-way (a kernel killed for memory, ``kill -9``) leaves its partial folder behind. A writer holds
its folder's lock for as long as it writes, and the operating system releases the lock of a dead process, so a
partial folder whose lock can be taken has no living writer: :func:`remove_abandoned_partials` removes those, and
only those that carry the marker (a folder the course did not make is never deleted, whatever its name).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from course_utils import messages
from course_utils.files import display_path, write_json_atomic

__all__ = ["MANIFEST_NAME", "MARKER_FILE", "build_folder_once", "read_manifest", "remove_abandoned_partials"]

#: The file in a finished folder that records how it was made (its settings first).
MANIFEST_NAME = "manifest.json"

#: The file in a partial folder that proves the course made it (the name earlier versions used, so that their
#: leftovers are cleaned up too).
MARKER_FILE = ".owner"

_PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial-[0-9a-f]+$")


def read_manifest(folder: Path) -> dict | None:
    """The manifest of a folder the course made (a dict, its ``settings`` first), or None when it is missing or
    unreadable."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _lock(folder: Path) -> FileLock:
    return FileLock(folder.with_name(f".{folder.name}.lock"))


def _remove_partials_of(folder: Path) -> list[Path]:
    """Under ``folder``'s lock: its partial folders that carry the marker (their writers are dead)."""
    removed = []
    for partial in sorted(folder.parent.glob(f".{folder.name}.partial-*")):
        if partial.is_dir() and not partial.is_symlink() and (partial / MARKER_FILE).is_file():
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial)
    return removed


def remove_abandoned_partials(root: Path | str, *, verbose: bool = True) -> list[Path]:
    """Remove the partial folders in ``root`` that killed runs left (no living writer holds their lock, and they
    carry :data:`MARKER_FILE`); return them. A folder still being written is kept."""
    root = Path(root).expanduser()
    names = {match["name"] for path in root.glob(".*.partial-*") if (match := _PARTIAL.match(path.name))}
    removed: list[Path] = []
    for name in sorted(names):
        lock = _lock(root / name)
        try:
            lock.acquire(timeout=0)
        except (Timeout, OSError):  # a writer is alive (or the lock cannot be made here): keep its folder
            continue
        try:
            removed += _remove_partials_of(root / name)
        finally:
            lock.release()
    if removed and verbose:
        messages.say(
            f"ℹ️ Removed {len(removed)} unfinished folder(s) of interrupted generations in {display_path(root)}: "
            f"{', '.join(path.name for path in removed)}.")
    return removed


def _refuse_if_not_ours(folder: Path, manifest: dict | None, not_ours: str) -> None:
    """Raise :class:`FileExistsError` when something is at ``folder`` that the course may not replace: anything
    but a real folder (not a link) whose manifest proves the course made it."""
    if not os.path.lexists(folder):
        return
    if manifest is None:
        reason = f"no readable {MANIFEST_NAME}"
    elif folder.is_symlink():
        reason = "a link"
    elif not folder.is_dir():
        reason = "not a folder"
    else:
        return
    raise FileExistsError(f"{display_path(folder)} exists but is not {not_ours} ({reason}): move it away, then "
                              "run the cell again.")


def build_folder_once(folder: Path | str, settings: dict[str, Any], write: Callable[[Path], dict[str, Any]], *,
                      repair: Callable[[Path, dict[str, Any]], None] | None = None,
                      not_ours: str = "a folder the course made", verbose: bool = True) -> Path:
    """Make ``folder`` with ``write`` unless it is finished with these ``settings``; return it.

    ``write(partial)`` fills the hidden partial folder and returns what the manifest records beside
    ``{"settings": settings}`` (counts, sizes). A finished folder (its manifest's ``settings`` equal ``settings``)
    is returned at once, after ``repair(folder, manifest)`` when given (it may mend damaged files). A folder the
    course made with other settings is replaced. Anything else in the way (no readable manifest, a link, a file)
    was not made by the course: :class:`FileExistsError` names it (``not_ours`` says what it is not) and nothing
    is deleted; the manifest is read again just before the replacement.
    """
    folder = Path(folder).expanduser()
    manifest = read_manifest(folder)
    if manifest is not None and manifest.get("settings") == settings:  # finished; no lock, so a read-only copy works
        if repair is not None:
            repair(folder, manifest)
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_partials(folder.parent, verbose=verbose)
    with _lock(folder):
        manifest = read_manifest(folder)  # again: another process may have finished it while this one waited
        if manifest is not None and manifest.get("settings") == settings:
            return folder
        _refuse_if_not_ours(folder, manifest, not_ours)
        _remove_partials_of(folder)
        partial = folder.with_name(f".{folder.name}.partial-{uuid.uuid4().hex[:8]}")
        try:
            partial.mkdir()
            (partial / MARKER_FILE).write_text("made by the course; removed when its writer is gone\n")
            record = {"settings": settings, **write(partial)}
            write_json_atomic(partial / MANIFEST_NAME, record)
            (partial / MARKER_FILE).unlink()
            finished = read_manifest(folder)
            # a writer that took no lock (an older course version) finished it meanwhile: keep it, others may read it
            if finished is not None and finished.get("settings") == settings:
                shutil.rmtree(partial)
                return folder
            _refuse_if_not_ours(folder, finished, not_ours)  # proved again: it may have changed during the write
            if os.path.lexists(folder):  # the course's, made with other settings (its manifest says so)
                shutil.rmtree(folder)
            os.replace(partial, folder)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return folder
