"""The data sets the course knows by name, in one table: their folders, download addresses and loaders.

Everything that needs to know about a named data set reads it from :data:`DATASET_REGISTRY`: the lessons'
``DATASET`` parameter (:data:`course_utils.config.DATASETS`), :func:`course_utils.datasets.load_dataset`,
``course prefetch`` and its ``--dataset`` choices, the workshop kit and the notebooks' set-up cell. Adding a
data set means adding one entry here and its loader in :mod:`course_utils.datasets`::

    entry = DATASET_REGISTRY["gtsrb"]
    entry.folder          # "gtsrb": under the data folder, in torchvision's layout
    entry.download_url    # where torchvision downloads it from (None: generated on this machine)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DATASET_REGISTRY", "DatasetEntry", "dataset_entry", "downloaded_folders"]


@dataclass(frozen=True)
class DatasetEntry:
    """One named data set.

    ``folder`` is where it lives under the data folder; ``download_url`` where torchvision downloads it from
    (``None`` for the data sets generated on this machine); ``files`` the parts a complete download holds,
    ``(description, path under folder)``; ``loader`` the function of :mod:`course_utils.datasets` that loads
    and splits it; ``target`` what its labels are, for data sets that offer several (Oxford-IIIT Pet).
    """

    name: str
    description: str
    folder: str
    loader: str
    download_url: str | None = None
    files: tuple[tuple[str, str], ...] = ()
    target: str = ""


_GTSRB_FILES = (("gtsrb train images", "GTSRB/Training"), ("gtsrb test images", "GTSRB/Final_Test/Images"),
                ("gtsrb test labels", "GT-final_test.csv"))
_PETS_FILES = (("pets images", "images"), ("pets annotations", "annotations"))
# Where torchvision downloads them from (see torchvision.datasets.GTSRB and OxfordIIITPet).
_GTSRB_URL = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"
_PETS_URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz"

#: The data sets known by name, in the order help texts list them. Any other ``DATASET`` value is the path of
#: a folder of class folders.
DATASET_REGISTRY: dict[str, DatasetEntry] = {entry.name: entry for entry in (
    DatasetEntry("synthetic-signs", "traffic signs drawn on this machine", "synthetic-signs",
                 loader="load_synthetic_signs"),
    DatasetEntry("gtsrb", "German Traffic Sign Recognition Benchmark, downloaded", "gtsrb",
                 loader="load_gtsrb", download_url=_GTSRB_URL, files=_GTSRB_FILES),
    DatasetEntry("pets", "Oxford-IIIT Pet, 37 breeds, downloaded", "oxford-iiit-pet",
                 loader="load_oxford_pet", download_url=_PETS_URL, files=_PETS_FILES, target="breed"),
    DatasetEntry("pets-binary", "Oxford-IIIT Pet, cat or dog, downloaded", "oxford-iiit-pet",
                 loader="load_oxford_pet", download_url=_PETS_URL, files=_PETS_FILES, target="binary-category"),
    DatasetEntry("sample-folder", "lesson 5's messy practice folder, drawn on this machine",
                 "lesson5-sample-folder", loader="load_sample_folder"),
)}


def dataset_entry(name: str) -> DatasetEntry:
    """The entry of the data set ``name``; ``ValueError`` naming the known ones when there is none."""
    if name not in DATASET_REGISTRY:
        raise ValueError(f"Unknown data set {name!r}: choose one of {', '.join(DATASET_REGISTRY)}.")
    return DATASET_REGISTRY[name]


def downloaded_folders() -> list[str]:
    """The folders (under the data folder) of the data sets that are downloaded, each once, in table order."""
    return list(dict.fromkeys(entry.folder for entry in DATASET_REGISTRY.values() if entry.download_url))
