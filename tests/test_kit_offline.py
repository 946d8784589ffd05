"""The workshop kit with the Internet off: which kit the set-up cell picks, what it checks, what it carries.

The set-up cell runs here in this Python, with pip replaced by a recorder (what would it install, from where),
as on Kaggle (``KAGGLE_KERNEL_RUN_TYPE``) or on any Jupyter with ``COURSE_KIT`` set. Kits are built with tiny
stand-in wheels, data and weights (``quick_kit``), so nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import test_kit
import test_prefetch
import torch
from helpers import fake_gtsrb, fake_weights
from test_kit import write_wheel

from course_tools import kit as kit_module
from course_tools import prefetch as prefetch_module
from course_tools.cli import main
from course_tools.kit import KIT_MANIFEST
from course_tools.notebooks import setup_cell_source
from course_tools.prefetch import PrefetchError, profile_needs
from course_utils import __version__, config

# Fixtures shared with the kit's other tests.
quick_kit = test_kit.quick_kit
no_downloads = test_prefetch.no_downloads


def set_up(monkeypatch, *, kaggle: bool = True, kit: Path | None = None, gpu: bool = False,
           inputs: Path | None = None) -> tuple[list[list[str]], str]:
    """Run the set-up cell; return the wheels pip was given (one list per pip call) and what it printed."""
    for name in ("KAGGLE_KERNEL_RUN_TYPE", "COURSE_KIT", "COURSE_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    if kaggle:
        monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    if kit is not None:
        monkeypatch.setenv("COURSE_KIT", str(kit))
    if inputs is not None:
        monkeypatch.setenv("COURSE_KAGGLE_INPUT", str(inputs))
    calls = test_kit.record_pip_installs(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Stand-in GPU")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(setup_cell_source(), "<setup>", "exec"), {})
    return calls, printed.getvalue()


def failure(monkeypatch, **options) -> str:
    """The one line of a set-up cell that must fail."""
    with pytest.raises(Exception) as caught:
        set_up(monkeypatch, **options)
    assert type(caught.value).__name__ == "SetUpFailed"
    return str(caught.value)


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Data and outputs of the 'platform' under tmp_path."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "platform-data"))
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "platform-torch"))
    return tmp_path


def edit_manifest(kit: Path, **changes) -> None:
    manifest = json.loads((kit / KIT_MANIFEST).read_text())
    (kit / KIT_MANIFEST).write_text(json.dumps({**manifest, **changes}))


# --------------------------------------------------------------------------------------------------------
# 3. The manifest is checked
# --------------------------------------------------------------------------------------------------------


def test_a_deleted_wheel_is_named_and_nothing_is_installed(quick_kit, places, monkeypatch):
    kit = places / "kit"
    manifest = quick_kit(kit, [])
    timm = next(name for name in manifest["wheels"] if name.startswith("timm-"))
    (kit / "wheels" / timm).unlink()
    with pytest.raises(Exception) as caught:
        set_up(monkeypatch, kit=kit)
    assert f"lacks 1 of the files course-kit.json lists, first wheels/{timm}" in str(caught.value)
    assert "nothing was installed" in str(caught.value)


def test_a_manifest_edited_to_another_version_is_noticed(quick_kit, places, monkeypatch):
    kit = places / "kit"
    quick_kit(kit, [])
    manifest = json.loads((kit / KIT_MANIFEST).read_text())
    old = write_wheel(places / "old", "course-utils", "0.0.9", {"course_utils/__init__.py": b""})
    (kit / "wheels" / old.name).write_bytes(old.read_bytes())
    course = next(name for name in manifest["wheels"] if name.startswith("course_utils-"))
    (kit / "wheels" / course).unlink()  # the old course wheel instead, the manifest edited to say this version
    files = {name: digest for name, digest in manifest["files"].items() if name != f"wheels/{course}"}
    files[f"wheels/{old.name}"] = kit_module.sha256_of(old)
    edit_manifest(kit, wheels=[old.name if name == course else name for name in manifest["wheels"]], files=files)

    message = failure(monkeypatch, kit=kit)

    assert f"says course version {__version__}, but its course wheel {old.name} is version 0.0.9" in message


def test_a_kit_of_another_course_version_names_both_versions(quick_kit, places, monkeypatch):
    kit = places / "kit"
    quick_kit(kit, [])
    edit_manifest(kit, version="0.0.9")
    message = failure(monkeypatch, kit=kit)
    assert message.startswith(f"the kit in {kit} is for course version 0.0.9, these notebooks are version "
                              f"{__version__}")


# --------------------------------------------------------------------------------------------------------
# 4. Two kits attached: the one of this version, not the first by name
# --------------------------------------------------------------------------------------------------------


def test_of_two_kits_attached_the_one_of_this_version_is_used(quick_kit, places, monkeypatch):
    inputs = places / "input"
    older, matching = inputs / "a-older-kit", inputs / "b-this-kit"
    quick_kit(older, [])
    edit_manifest(older, version="0.0.9")
    quick_kit(matching, [])

    calls, printed = set_up(monkeypatch, inputs=inputs)

    assert f"from the workshop kit in {matching}" in printed and len(calls) == 1

    edit_manifest(matching, version="0.0.8")
    message = failure(monkeypatch, inputs=inputs)
    assert message.startswith("none of the 2 kits attached fits:")
    assert "version 0.0.9" in message and "version 0.0.8" in message


# --------------------------------------------------------------------------------------------------------
# 5. COURSE_KIT on any Jupyter
# --------------------------------------------------------------------------------------------------------


def test_course_kit_is_used_on_any_hosted_jupyter(quick_kit, places, monkeypatch):
    kit = places / "kit"
    manifest = quick_kit(kit, [])
    calls, printed = set_up(monkeypatch, kaggle=False, kit=kit)
    assert calls == [manifest["wheels"]]
    assert f"Set-up (Jupyter): installing the course package {__version__} from the workshop kit in {kit}" in printed

    calls, printed = set_up(monkeypatch, kaggle=False)  # no kit, not Colab or Kaggle: nothing to do
    assert calls == [] and printed.startswith("Set-up: not on Colab or Kaggle and no COURSE_KIT set")


# --------------------------------------------------------------------------------------------------------
# 7. On Kaggle, generated data stays out of the working folder Kaggle saves as output
# --------------------------------------------------------------------------------------------------------


def test_on_kaggle_data_goes_to_scratch_and_only_outputs_to_the_working_folder(monkeypatch):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.delenv("COURSE_OUTPUT_DIR", raising=False)
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    assert config.KAGGLE_WORKING not in config.default_data_dir().parents
    assert config.default_data_dir() == Path("/kaggle/temp/data")
    assert config.default_output_dir("01_cnn_from_scratch") == Path("/kaggle/working/outputs/01_cnn_from_scratch")


# --------------------------------------------------------------------------------------------------------
# 2. A kit for the full profile (a GPU workshop with no network)
# --------------------------------------------------------------------------------------------------------


def fake_pets(data_dir: Path) -> None:
    """The folders torchvision's OxfordIIITPet looks for, with one small file each."""
    base = data_dir / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "images" / "Abyssinian_1.jpg").write_bytes(b"\xff\xd8 a cat")
    (base / "annotations").mkdir()
    (base / "annotations" / "trainval.txt").write_text("Abyssinian_1 1 1 1\n")


@pytest.fixture
def full_caches(places, monkeypatch, no_downloads):
    """Stand-in GTSRB, Pets and ResNet-18/50 weights in the caches prefetch reads; their URLs by backbone."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(places / "full-data"))
    fake_gtsrb(places / "full-data")
    fake_pets(places / "full-data")
    urls = {}
    hub = places / "full-torch" / "hub" / "checkpoints"
    for arch in ("resnet18", "resnet50"):
        _, urls[arch] = fake_weights(places / f"torch-{arch}", arch)
        hub.mkdir(parents=True, exist_ok=True)
        name = urls[arch].rsplit("/", 1)[1]
        (places / f"torch-{arch}" / "hub" / "checkpoints" / name).rename(hub / name)
    monkeypatch.setenv("TORCH_HOME", str(places / "full-torch"))
    monkeypatch.setattr(prefetch_module, "weights_url", lambda arch: urls[arch])
    return urls


def test_the_full_profile_needs_gtsrb_pets_and_two_resnets():
    assert profile_needs("full") == (["gtsrb", "pets-binary"], ["resnet18", "resnet50"])


def test_a_full_kit_packs_every_data_set_and_weights_and_says_it_serves_full(full_caches, quick_kit, places,
                                                                            monkeypatch):
    assert main(["prefetch", "--kit", str(places / "kit"), "--profile", "full", "--dataset", "gtsrb",
                 "--arch", "resnet18", "--wheels-from", str(places / "wheelhouse")]) == 0  # quick_kit's wheels
    manifest = json.loads((places / "kit" / KIT_MANIFEST).read_text())
    assert manifest["profiles"] == ["full", "offline", "smoke"]
    assert manifest["datasets"] == ["gtsrb", "oxford-iiit-pet"]
    assert sorted(manifest["weights"]) == sorted(url.rsplit("/", 1)[1] for url in full_caches.values())
    assert (places / "kit" / "data" / "oxford-iiit-pet" / "annotations" / "trainval.txt").is_file()

    # With a GPU, the set-up cell leaves the profile to the lesson (full), links data and weights from the kit.
    monkeypatch.setenv("COURSE_DATA_DIR", str(places / "platform-data"))
    monkeypatch.setenv("TORCH_HOME", str(places / "platform-torch"))
    calls, printed = set_up(monkeypatch, kit=places / "kit", gpu=True)
    assert "COURSE_PROFILE=offline" not in printed and "profile chosen automatically" in printed
    assert (places / "platform-data" / "gtsrb").resolve() == places / "kit" / "data" / "gtsrb"
    assert (places / "platform-data" / "oxford-iiit-pet").is_dir()
    assert len(list((places / "platform-torch" / "hub" / "checkpoints").glob("resnet*.pth"))) == 2


def test_an_offline_kit_on_a_gpu_sets_the_offline_profile_in_one_line(quick_kit, places, monkeypatch):
    kit = places / "kit"
    manifest = quick_kit(kit, [])
    assert manifest["profiles"] == ["offline", "smoke"]

    _, printed = set_up(monkeypatch, kit=kit, gpu=True)

    lines = [line for line in printed.splitlines() if "this kit serves the offline profile" in line]
    assert len(lines) == 1 and "--profile full" in lines[0]
    assert "profile offline" in printed.splitlines()[-1]
    import os

    assert os.environ["COURSE_PROFILE"] == "offline"

    monkeypatch.setenv("COURSE_PROFILE", "full")  # asked for on purpose: kept, with one line saying what lacks
    monkeypatch.setattr("course_tools.notebooks.setup_cell_source", setup_cell_source)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(setup_cell_source(), "<setup>", "exec"), {})
    assert "COURSE_PROFILE=full, but this kit serves offline, smoke" in printed.getvalue()
    assert os.environ["COURSE_PROFILE"] == "full"


def test_a_kit_without_pets_does_not_claim_the_full_profile(full_caches, quick_kit, places):
    gtsrb = prefetch_module.prefetch("gtsrb", "resnet18", verbose=False)
    resnet50 = prefetch_module.prefetch(None, "resnet50", verbose=False)
    kit_module.build_kit(places / "kit", gtsrb + resnet50, wheels_from=places / "wheelhouse", verbose=False)
    manifest = json.loads((places / "kit" / KIT_MANIFEST).read_text())
    assert manifest["datasets"] == ["gtsrb"] and len(manifest["weights"]) == 2
    assert manifest["profiles"] == ["offline", "smoke"]


# --------------------------------------------------------------------------------------------------------
# 6. The earlier lessons' results travel with the kit
# --------------------------------------------------------------------------------------------------------


def lesson_results(folder: Path, lesson: str, profile: str = "offline") -> None:
    (folder / lesson).mkdir(parents=True)
    (folder / lesson / "metrics.json").write_text(json.dumps({"lesson": lesson, "profile": profile,
                                                              "test_accuracy": 0.9}))
    (folder / lesson / "test_outcomes.json").write_text('{"images": ["a|1.png"], "correct": [1]}')
    (folder / lesson / "model.pt").write_bytes(b"not carried")


def test_results_are_carried_and_placed_where_the_lessons_look(quick_kit, places, monkeypatch):
    build = places / "build"
    for lesson in config.LESSONS[:3]:
        lesson_results(build, lesson)
    monkeypatch.setattr(kit_module, "download_kit_wheels",
                        lambda wheels, wheels_from=None, python=None: [])
    kit = places / "kit"
    quick_kit(kit, [])  # the course wheel and stand-ins, then the same kit again with the results
    original = kit_module.build_kit
    monkeypatch.setattr(kit_module, "build_kit",
                        lambda kit_dir, items, **options: original(kit_dir, items, **{**options, "verbose": False}))
    assert main(["prefetch", "--kit", str(kit), "--results", str(build)]) == 0
    manifest = json.loads((kit / KIT_MANIFEST).read_text())
    assert manifest["results"] == {lesson: "offline" for lesson in config.LESSONS[:3]}
    assert not list(kit.rglob("model.pt"))

    outputs = places / "outputs"
    (outputs / config.LESSONS[1]).mkdir(parents=True)  # lesson 2 ran here already: its own results stay
    (outputs / config.LESSONS[1] / "metrics.json").write_text('{"lesson": "mine"}')

    _, printed = set_up(monkeypatch, kit=kit)

    from course_utils.results import read_metrics

    assert read_metrics(outputs / config.LESSONS[0]) == {"lesson": config.LESSONS[0], "profile": "offline",
                                                         "test_accuracy": 0.9}
    assert (outputs / config.LESSONS[0] / "test_outcomes.json").is_file()
    assert read_metrics(outputs / config.LESSONS[1]) == {"lesson": "mine"}
    assert read_metrics(outputs / config.LESSONS[2])["lesson"] == config.LESSONS[2]
    assert "the kit's results of lessons 01, 03 (offline profile)" in printed


def test_results_folder_without_metrics_is_refused(places, quick_kit):
    (places / "empty").mkdir()
    with pytest.raises(PrefetchError, match="holds no <lesson>/metrics.json: run the lessons first"):
        kit_module.build_kit(places / "kit", [], results=places / "empty", verbose=False,
                                  wheels_from=places / "wheelhouse")
    assert not (places / "kit").exists()


def test_results_only_apply_to_a_kit(capsys):
    assert main(["prefetch", "--arch", "efficientnet_lite0", "--results", "build"]) == 2
    assert "--results only applies to --kit" in capsys.readouterr().err



# --------------------------------------------------------------------------------------------------------
# 1. The kit carries the whole closure: it installs where neither timm nor any of its dependencies is
# --------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_kit_installs_with_no_index_where_only_the_platform_packages_are(tmp_path, monkeypatch):
    import os
    import sysconfig

    from test_kit import kit_closure, site_entries, wheel_of_installed

    from course_tools.kit import PREINSTALLED, dependency_closure, installed_metadata

    # The platform: a venv that sees only PREINSTALLED, what those need, and pip; no timm, huggingface_hub, ...
    platform_packages, _ = dependency_closure(list(PREINSTALLED), installed_metadata())
    visible = tmp_path / "platform-site"
    visible.mkdir()
    for entry in site_entries(platform_packages | {"pip"}):
        if (Path(sysconfig.get_paths()["purelib"]) / entry).exists():
            (visible / entry).symlink_to(Path(sysconfig.get_paths()["purelib"]) / entry)
    venv = tmp_path / "platform"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "platform.pth").write_text(f"{visible}\n")
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("PYTHON", "COURSE_", "PIP_", "VIRTUAL_ENV", "KAGGLE", "TORCH_HOME"))}
    environment.update(PIP_NO_INDEX="1", PIP_FIND_LINKS="", COURSE_DATA_DIR=str(tmp_path / "data"),
                       COURSE_OUTPUT_DIR=str(tmp_path / "outputs"), TMPDIR=str(tmp_path),
                       XDG_CACHE_HOME=str(tmp_path / "cache"), COURSE_KIT=str(tmp_path / "kit"))
    missing = subprocess.run([str(python), "-c", "import timm"], env=environment, capture_output=True, text=True)
    assert "No module named 'timm'" in missing.stderr
    for name in ("huggingface_hub", "safetensors", "yaml", "tqdm"):
        assert subprocess.run([str(python), "-c", f"import {name}"], env=environment,
                              capture_output=True).returncode != 0, f"{name} must come from the kit"

    wheelhouse = tmp_path / "wheelhouse"
    for name in kit_closure():
        wheel_of_installed(name, wheelhouse)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "prefetched"))
    assert main(["prefetch", "--kit", str(tmp_path / "kit"), "--wheels-from", str(wheelhouse)]) == 0

    installed = subprocess.run([str(python), "-c", setup_cell_source()], env=environment, capture_output=True,
                               text=True, cwd=tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert f"Set-up (Jupyter): installing the course package {__version__} from the workshop kit" in installed.stdout

    code = ("import course_utils.backbones, timm, huggingface_hub, safetensors, yaml\n"
            "print(timm.__file__, huggingface_hub.__file__, course_utils.backbones.__file__)\n"
            "print(type(course_utils.backbones.load_backbone('efficientnet_lite0', verbose=False)[0]).__name__)")
    ran = subprocess.run([str(python), "-c", code], env=environment, capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert all(path.startswith(str(venv)) for path in ran.stdout.split()[:3])  # from the kit, into the venv
