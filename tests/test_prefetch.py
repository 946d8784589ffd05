"""``prefetch``: finds what is cached without downloading, verifies it, fails fast without network."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
from helpers import fake_gtsrb, fake_weights

from course_tools import prefetch as prefetch_module
from course_tools.prefetch import PrefetchError, has_network, prefetch, verify_weights


@pytest.fixture
def no_downloads(monkeypatch):
    """Any attempt to reach the network or download fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("prefetch tried to download something that is cached")

    monkeypatch.setattr(prefetch_module, "has_network", refuse)
    monkeypatch.setattr(prefetch_module, "download_dataset", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


def test_cached_data_and_weights_are_found_in_the_lessons_caches(tmp_path, monkeypatch, no_downloads, capsys):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    fake_gtsrb(tmp_path / "data")
    weights, url = fake_weights(tmp_path / "torch")
    monkeypatch.setattr(prefetch_module, "weights_url", lambda arch: url)

    items = prefetch("gtsrb", "resnet18")  # default locations: $COURSE_DATA_DIR and $TORCH_HOME

    assert [(item.kind, item.name) for item in items] == [
        ("dataset", "gtsrb train images"), ("dataset", "gtsrb test images"), ("dataset", "gtsrb test labels"),
        ("weights", "resnet18")]
    assert items[0].path == tmp_path / "data" / "gtsrb" / "GTSRB" / "Training" and items[0].bytes == 14
    assert items[3].path == weights and items[3].bytes == weights.stat().st_size
    printed = capsys.readouterr().out
    assert str(weights) in printed and "Ready: 4 item(s)" in printed


def test_an_explicit_torch_home_is_used_and_named(tmp_path, monkeypatch, no_downloads, capsys):
    weights, url = fake_weights(tmp_path / "cache")
    monkeypatch.setattr(prefetch_module, "weights_url", lambda arch: url)
    items = prefetch(None, "resnet18", torch_home=tmp_path / "cache")
    assert items[0].path == weights
    assert f"TORCH_HOME={tmp_path / 'cache'}" in capsys.readouterr().out


def test_verbose_false_prints_nothing(tmp_path, monkeypatch, no_downloads, capsys):
    fake_gtsrb(tmp_path / "data")
    weights, url = fake_weights(tmp_path / "cache")
    monkeypatch.setattr(prefetch_module, "weights_url", lambda arch: url)
    items = prefetch("gtsrb", "resnet18", data_dir=tmp_path / "data", torch_home=tmp_path / "cache",
                     verbose=False)
    assert len(items) == 4 and items[3].path == weights
    assert capsys.readouterr().out == ""
    prefetch("synthetic-signs", None, data_dir=tmp_path / "data", verbose=False)
    assert capsys.readouterr().out == ""


def test_every_course_data_set_is_known_to_prefetch(tmp_path):
    from course_utils.config import DATASETS

    assert set(prefetch_module.LOCAL_DATASETS) <= set(DATASETS)
    for name in DATASETS:  # one list: each is either generated locally or has files torchvision downloads
        paths = prefetch_module.dataset_paths(name, tmp_path)
        assert bool(paths) != (name in prefetch_module.LOCAL_DATASETS), name


def test_packaged_offline_weights_need_no_download(no_downloads):
    (item,) = prefetch("synthetic-signs", "efficientnet_lite0", data_dir=Path("unused"))
    assert item.kind == "weights" and item.path.name.startswith("efficientnet-lite0")
    assert item.bytes > 10_000_000


def test_without_network_it_fails_fast_with_one_clear_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(prefetch_module, "has_network", lambda url, timeout=3.0: False)
    monkeypatch.setattr(prefetch_module, "download_dataset", lambda *a: pytest.fail("download attempted"))
    with pytest.raises(PrefetchError) as caught:
        prefetch("gtsrb", None, data_dir=tmp_path / "data")
    message = str(caught.value)
    assert message.startswith("No network: cannot reach sid.erda.dk to download the gtsrb data set")
    assert "offline profile" in message and message.count(". ") == 0

    with pytest.raises(PrefetchError, match="download.pytorch.org to download the resnet18 weights"):
        prefetch(None, "resnet18", torch_home=tmp_path / "torch")


def test_broken_cache_entries_are_reported(tmp_path, monkeypatch, no_downloads):
    fake_gtsrb(tmp_path)
    (tmp_path / "gtsrb" / "GT-final_test.csv").write_bytes(b"")
    with pytest.raises(PrefetchError, match="gtsrb test labels .* is missing or empty"):
        prefetch("gtsrb", None, data_dir=tmp_path)

    weights, url = fake_weights(tmp_path / "torch")
    weights.write_bytes(weights.read_bytes() + b"tampered")
    with pytest.raises(PrefetchError, match="corrupt"):
        verify_weights(weights)
    pickled = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 2), pickled)  # a whole pickled model does not load with weights_only
    with pytest.raises(PrefetchError, match="does not load safely"):
        verify_weights(pickled)


def test_unknown_names_are_refused(tmp_path, no_downloads):
    with pytest.raises(PrefetchError, match="Unknown data set 'mnist'"):
        prefetch("mnist", None, data_dir=tmp_path)
    with pytest.raises(PrefetchError, match="Unknown backbone 'resnet19'"):
        prefetch(None, "resnet19", torch_home=tmp_path)


def test_network_check_connects_to_the_host_of_the_url():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    assert has_network(f"http://127.0.0.1:{port}/file.zip", timeout=1)
    server.close()
    assert not has_network(f"http://127.0.0.1:{port}/file.zip", timeout=1)
