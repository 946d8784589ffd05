"""The workshop rehearsal of issue 21: every lesson runs from a `full` kit with the Internet off.

An instructor builds the kit with ``course prefetch --kit --profile full`` (the data sets and weights of the GPU
profile, the wheels of everything the course needs beyond the platform's packages); a student's kernel on a
Kaggle-like platform (tests/test_kit.py's ``platform``: a fresh environment without the course, timm or their
dependencies, pip pointed at no index) attaches it, and each lesson's set-up cell installs the course from the
kit and links its data. The GPU is simulated by ``COURSE_PROFILE=full``. The data are stand-ins in
torchvision's layouts (GTSRB, Oxford-IIIT Pet) and the lessons run with ``ARCH efficientnet_lite0`` on small
images, so the rehearsal takes minutes on a CPU; nothing is downloaded.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nbformat
import pytest
import test_kit
import test_kit_offline
import test_prefetch
from helpers import fake_weights, stand_in_gtsrb, stand_in_pets

from course_tools import prefetch as prefetch_module
from course_tools.cli import main
from course_tools.kit import KIT_MANIFEST
from course_utils import __version__
from course_utils.config import LESSONS

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.notebooks, pytest.mark.slow]

preinstalled = test_kit.preinstalled
platform = test_kit.platform
places = test_kit_offline.places
no_downloads = test_prefetch.no_downloads

# Small enough for a CPU; the profile's own data sets and lesson 5's cat-or-dog task are kept.
SMALL = {"ARCH": "efficientnet_lite0", "IMAGE_SIZE": 32, "EPOCHS": 1, "BATCH_SIZE": 16}


@pytest.fixture
def full_kit(platform, places, monkeypatch, no_downloads) -> Path:
    """A kit built as an instructor would for a GPU workshop (``course prefetch --kit --profile full``), in the
    folder where the platform (set up first) finds attached data sets."""
    data = places / "instructor-data"
    stand_in_gtsrb(data)
    stand_in_pets(data)
    monkeypatch.setenv("COURSE_DATA_DIR", str(data))
    urls = {}
    hub = places / "instructor-torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    for arch in ("resnet18", "resnet50"):  # the profile's weights (the lessons here use EfficientNet-Lite0's)
        path, urls[arch] = fake_weights(places / f"torch-{arch}", arch)
        path.rename(hub / path.name)
    monkeypatch.setenv("TORCH_HOME", str(places / "instructor-torch"))
    monkeypatch.setattr(prefetch_module, "weights_url", lambda arch: urls[arch])
    wheelhouse = places / "wheelhouse"
    for name in test_kit.kit_closure():
        test_kit.wheel_of_installed(name, wheelhouse)
    kit = places / "input" / "teacher" / "transfer-course-kit"  # where Kaggle mounts an attached data set
    assert main(["prefetch", "--kit", str(kit), "--profile", "full", "--wheels-from", str(wheelhouse)]) == 0
    return kit


def test_every_lesson_runs_from_a_full_kit_with_the_internet_off(full_kit, platform, tmp_path):
    python, environment = platform
    manifest = json.loads((full_kit / KIT_MANIFEST).read_text())
    assert "full" in manifest["profiles"] and manifest["version"] == __version__
    environment = {**environment, "COURSE_PROFILE": "full"}  # what a GPU runtime would choose
    work = tmp_path / "kaggle-working"
    work.mkdir()
    ran = []
    for lesson in LESSONS:
        notebook = work / f"{lesson}.ipynb"
        notebook.write_bytes((ROOT / "solutions" / f"{lesson}.ipynb").read_bytes())
        parameters = [part for name, value in SMALL.items() for part in ("-p", name, str(value))]
        result = subprocess.run([str(python), "-m", "papermill", str(notebook), str(work / f"ran-{lesson}.ipynb"),
                                 "--cwd", str(work), "--no-progress-bar", "--kernel", "python3", *parameters],
                                env=environment, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{lesson}: {result.stderr[-3000:]}"
        executed = nbformat.read(work / f"ran-{lesson}.ipynb", as_version=4)
        setup = next(cell for cell in executed.cells if "setup" in cell.metadata.get("tags", []))
        said = test_kit.cell_text(setup)
        if lesson == LESSONS[0]:
            assert f"installing the course package {__version__} from the workshop kit in {full_kit}" in said
        else:
            assert f"the course package {__version__} is already installed" in said
        metrics = json.loads((tmp_path / "outputs" / lesson / "metrics.json").read_text())
        ran.append((lesson, metrics["profile"], metrics.get("dataset")))

    assert ran == [(lesson, "full", "pets-binary" if lesson.startswith(("05", "06")) else "gtsrb")
                   for lesson in LESSONS]
    # The course came from the kit's wheels, not from this checkout.
    installed = subprocess.run([str(python), "-c", "import course_utils, timm; print(course_utils.__file__)"],
                               env=environment, capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert str(tmp_path / "platform") in installed and str(ROOT) not in installed
    # The data came from the kit: linked into the platform's data folder, not copied or downloaded.
    assert (tmp_path / "data" / "gtsrb").resolve() == full_kit / "data" / "gtsrb"
