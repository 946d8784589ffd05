"""One table of the named data sets (course_utils.dataset_registry), read by the lessons' parameters, load_dataset,
``course prefetch`` and the kit; the CLI's choices of data set, backbone and profile come from the same places."""

from __future__ import annotations

import inspect

import pytest

from course_tools import prefetch as prefetch_module
from course_tools.cli import main
from course_utils import config, datasets, synthetic
from course_utils.backbones import BACKBONES
from course_utils.dataset_registry import DATASET_REGISTRY, DatasetEntry, dataset_entry, downloaded_folders


def _refused(argv: list[str], capsys) -> str:
    """The error argparse prints when it refuses ``argv`` (exit status 2)."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    return capsys.readouterr().err


def _quoted(names) -> list[str]:
    return [f"'{name}'" for name in names]


def test_each_entry_has_a_loader_in_datasets_that_takes_the_entry_the_folder_and_the_request():
    for name, entry in DATASET_REGISTRY.items():
        assert entry.name == name
        loader = getattr(datasets, entry.loader, None)
        assert callable(loader), f"{name}: course_utils.datasets has no {entry.loader}"
        assert list(inspect.signature(loader).parameters) == ["entry", "data_dir", "request"], name


def test_a_downloaded_entry_says_where_from_and_what_a_complete_copy_holds():
    for entry in DATASET_REGISTRY.values():
        assert bool(entry.download_url) == bool(entry.files), entry.name
        assert entry.download_url is None or entry.download_url.startswith("https://"), entry.name
    assert downloaded_folders() == ["gtsrb", "oxford-iiit-pet"]  # each folder once


def test_the_lessons_accept_exactly_the_registry_names():
    assert config.DATASETS == tuple(DATASET_REGISTRY)
    for name in DATASET_REGISTRY:
        assert config.parameter_problem("DATASET", name) is None
    assert config.parameter_problem("DATASET", "no-such-data-set") is not None


def test_load_dataset_calls_the_loader_the_registry_names_with_the_entry(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(datasets, "load_gtsrb", lambda entry, data_dir, request: calls.append(
        (entry, data_dir, request)) or "split")
    assert datasets.load_dataset("gtsrb", tmp_path, profile="offline", seed=3) == "split"
    (entry, data_dir, request), = calls
    assert entry is DATASET_REGISTRY["gtsrb"] and data_dir == tmp_path
    assert request.seed == 3 and request.download is False  # only the full profile downloads
    assert request.test_fraction == config.profile_defaults("offline")["test_fraction"]


def test_a_new_entry_is_generated_in_its_own_folder(monkeypatch, tmp_path):
    class Generated(Exception):
        """Stops the load once the generator was called (drawing the signs is not what this test is about)."""

    def generate_signs(root, **options):
        raise Generated(root)

    monkeypatch.setattr(synthetic, "generate_signs", generate_signs)
    monkeypatch.setitem(DATASET_REGISTRY, "signs-elsewhere", DatasetEntry(
        "signs-elsewhere", "the synthetic signs in another folder", "elsewhere", loader="load_synthetic_signs"))
    with pytest.raises(Generated) as generated:
        datasets.load_dataset("signs-elsewhere", tmp_path, profile="smoke")
    assert generated.value.args == (tmp_path / "elsewhere",)


def test_prefetch_reads_folders_and_files_from_the_registry(tmp_path):
    for name, entry in DATASET_REGISTRY.items():
        paths = prefetch_module.dataset_paths(name, tmp_path)
        assert sorted(paths) == sorted(description for description, _ in entry.files)
        assert all(tmp_path / entry.folder in path.parents for path in paths.values())
    assert set(prefetch_module.LOCAL_DATASETS) == {name for name, entry in DATASET_REGISTRY.items()
                                                   if not entry.download_url}


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown data set 'mnist': choose one of synthetic-signs, gtsrb"):
        dataset_entry("mnist")


def test_the_cli_offers_the_registry_names_and_shows_them_in_its_help(capsys):
    error = _refused(["prefetch", "--dataset", "mnist"], capsys)
    assert all(name in error for name in _quoted(DATASET_REGISTRY))
    with pytest.raises(SystemExit):
        main(["prefetch", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert all(name in shown for name in DATASET_REGISTRY)  # sample-folder too


def test_the_cli_offers_the_backbones_and_profiles_of_config(capsys):
    error = _refused(["prefetch", "--arch", "vgg16"], capsys)
    assert all(name in error for name in _quoted(config.BACKBONE_NAMES))
    assert "scratch_cnn" not in error  # nothing to download for the network lesson 1 trains
    error = _refused(["run", "--profile", "fast"], capsys)
    assert all(name in error for name in _quoted(config.PROFILES))


def test_the_backbone_names_of_config_are_the_backbones_table():
    assert tuple(BACKBONES) == config.BACKBONE_NAMES
    assert config.ARCHITECTURES == (*config.BACKBONE_NAMES, config.SCRATCH_CNN)
