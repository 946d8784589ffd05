"""The set-up cell of every lesson, as real Python that is linted and tested like the rest.

``course build`` copies this file into the cell tagged ``setup`` of every notebook, from its first line
``# Set-up: ...`` on, with the defaults of ``repository``, ``ref`` and ``version`` replaced by the course's,
and adds the call ``_set_up_course()`` and ``del _set_up_course`` (the notebook keeps no name of it); see
:func:`course_tools.setup_cell.setup_cell_source`. Importing this module only defines the function.

The cell runs before the course package is installed: until pip has installed it, the function uses only the
standard library, and it imports everything inside itself so that the notebook's namespace stays clean. On
Colab, Kaggle or with a workshop kit (``$COURSE_KIT``) it installs the course; elsewhere it does nothing.
"""

__all__ = []  # nothing to import: course build copies the function into the notebooks


# Set-up: on Colab, Kaggle or with a workshop kit ($COURSE_KIT) this installs the course; else it does nothing.
# (Written by `course build` from course_tools/setup_cell_code.py: edit it there, not here.)
def _set_up_course(repository="https://github.com/<owner>/<name>", ref="v<version>", version="<version>"):
    import hashlib
    import importlib
    import importlib.metadata
    import io
    import json
    import os
    import shutil
    import subprocess
    import sys
    import tempfile
    import zipfile
    from pathlib import Path

    class SetUpFailed(Exception):
        def _render_traceback_(self):  # Jupyter shows this line instead of a traceback
            return [f"SetUpFailed: {self}"]

    # PyTorch's CPU threads spin while they wait for each other; on a busy laptop a descheduled thread then
    # stalls its partner at every operation. Passive waiting avoids that; it only works before torch is imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    on_colab = "google.colab" in sys.modules
    # The course's rule for "are we on Kaggle" is course_utils.config.on_kaggle(); this cell runs before the
    # package is installed, so it repeats the same condition.
    on_kaggle = "KAGGLE_KERNEL_RUN_TYPE" in os.environ
    # A workshop kit (`course prefetch --kit`): the folder in $COURSE_KIT, on any Jupyter; else, on Kaggle, the
    # first one attached under the input folder that was built for this version of the course.
    chosen = os.environ.get("COURSE_KIT", "").strip()
    if not (on_colab or on_kaggle or chosen):
        print("Set-up: not on Colab or Kaggle and no COURSE_KIT set, nothing to do (install the course with "
              "`pip install -e .`).")
        return
    platform = "Colab" if on_colab else "Kaggle" if on_kaggle else "Jupyter"
    advice = f"rebuild the kit with `course prefetch --kit` from version {version} of the course"
    inputs = Path(os.environ.get("COURSE_KAGGLE_INPUT", "/kaggle/input"))
    if chosen:
        folders = [Path(chosen).expanduser()]
        if not (folders[0] / "course-kit.json").is_file():
            raise SetUpFailed(f"COURSE_KIT={chosen} is not a workshop kit (no course-kit.json): fix the path or "
                              "unset it.")
    else:
        folders = [path.parent for depth in ("", "*/", "*/*/", "*/*/*/")
                   for path in sorted(inputs.glob(depth + "course-kit.json"))] if on_kaggle else []
    kit = manifest = None
    problems = []
    for folder in folders:
        listing = folder / "course-kit.json"
        try:
            found = json.loads(listing.read_text(encoding="utf-8"))
            if not (isinstance(found.get("wheels"), list) and isinstance(found.get("files"), dict)):
                raise ValueError("no list of wheels and their SHA-256")
        except (OSError, ValueError, AttributeError) as error:
            problems.append(f"{listing} is not a kit manifest ({error}): {advice}.")
            continue
        if found.get("version") != version:
            problems.append(f"the kit in {folder} is for course version {found.get('version')}, these notebooks "
                            f"are version {version}: attach a kit of version {version}, or {advice}.")
            continue
        kit, manifest = folder, found
        break
    if kit is None and problems:
        raise SetUpFailed(problems[0] if len(problems) == 1 else
                          f"none of the {len(problems)} kits attached fits: " + " ".join(problems))
    verified = {}  # the kit's wheels, read once and checked against its manifest's SHA-256
    if kit is not None:
        files, listing = manifest["files"], kit / "course-kit.json"
        for name, digest in files.items():
            if not (isinstance(name, str) and isinstance(digest, str) and not name.startswith("/")
                    and ".." not in name.split("/")):
                raise SetUpFailed(f"{listing} lists {name!r}, which is not a file of the kit: {advice}.")
        missing = [name for name in files if not (kit / name).is_file()]
        if missing:
            raise SetUpFailed(f"the kit in {kit} lacks {len(missing)} of the files course-kit.json lists, first "
                              f"{missing[0]} (deleted, or not uploaded): nothing was installed; {advice}.")

        def checked(name):
            data = (kit / name).read_bytes()
            if hashlib.sha256(data).hexdigest() != files.get(name):
                raise SetUpFailed(f"{kit / name} does not match the SHA-256 recorded in course-kit.json (changed or "
                                  f"damaged since the kit was built): nothing was installed; {advice}.")
            return data

        for name in manifest["wheels"]:
            if not (isinstance(name, str) and name.endswith(".whl") and Path(name).name == name
                    and not name.startswith(".")):
                raise SetUpFailed(f"{listing} lists {name!r}, which is not a wheel's name: {advice}.")
            verified[name] = checked("wheels/" + name)
        # The course wheel must be the version the manifest names: a manifest edited to another version is noticed.
        course = [name for name in verified if name.startswith("course_utils-")]
        try:
            with zipfile.ZipFile(io.BytesIO(verified[course[0]])) as archive:
                text = archive.read(next(item for item in archive.namelist()
                                         if item.endswith(".dist-info/METADATA"))).decode("utf-8")
            built = next(line[8:].strip() for line in text.splitlines() if line.startswith("Version:"))
        except (IndexError, StopIteration, KeyError, ValueError, zipfile.BadZipFile):
            raise SetUpFailed(f"{listing} lists no readable course wheel: {advice}.") from None
        if built != version:
            raise SetUpFailed(f"{listing} says course version {version}, but its course wheel {course[0]} is "
                              f"version {built} (the manifest was edited): {advice}.")
    try:
        installed = importlib.metadata.version("course-utils")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed == version:
        print(f"Set-up ({platform}): the course package {version} is already installed.")
    else:
        wheelhouse = None
        if kit is not None:
            source = f"the workshop kit in {kit}"
            # Only the checked bytes are installed: copied to a folder of their own.
            wheelhouse = Path(tempfile.mkdtemp(prefix="course-kit-wheels-"))
            for name, data in verified.items():
                (wheelhouse / name).write_bytes(data)
            pip = ["--no-index", "--find-links", str(wheelhouse), f"course-utils=={version}"]
        else:
            source = f"{repository} at {ref}"
            pip = [f"course-utils @ git+{repository}@{ref}"]
            advice = ("switch Settings -> Internet on, or attach the workshop kit as input" if on_kaggle
                      else "check the repository URL and that it has the tag or commit " + ref)
        print(f"Set-up ({platform}): installing the course package {version} from {source} ...")
        result = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                                 "--no-color", "--retries", "1", *pip], capture_output=True, text=True)
        if wheelhouse is not None:
            shutil.rmtree(wheelhouse, ignore_errors=True)
        if result.returncode != 0:
            log = Path(tempfile.gettempdir()) / "course-setup-pip.log"
            log.write_text(result.stdout + result.stderr)
            errors = [line[6:].strip() for line in (result.stderr + result.stdout).splitlines()
                      if line.startswith("ERROR:")]
            reason = f" ({errors[-1]})" if errors and kit is not None else ""
            print(f"Set-up ({platform}) failed: pip could not install the course from {source}{reason}; "
                  f"{advice} (pip's log: {log}).")
            raise SetUpFailed("the course package is not installed; see the line above.")
        importlib.invalidate_caches()
    from course_utils import config
    from course_utils.dataset_registry import downloaded_folders
    # Data and weights: from the kit, or on Kaggle from anything attached under the input folder (for example
    # what `course prefetch` cached), linked into the caches the lessons read (read-only inputs stay as they are).
    roots = [kit] if kit is not None else [inputs] if on_kaggle else []
    data = config.default_data_dir()
    try:
        import torch
        hub = Path(torch.hub.get_dir()) / "checkpoints"  # honours TORCH_HOME and XDG_CACHE_HOME
    except ImportError:
        hub = None
    for name in manifest["files"] if kit is not None else []:
        if name.startswith("checkpoints/"):
            checked(name)  # weights are loaded with torch.load: only the kit's own
    for root in roots:
        for depth in ("", "*/", "*/*/", "*/*/*/"):
            for name in downloaded_folders():
                for found in sorted(root.glob(depth + name)):
                    if found.is_dir() and any(found.iterdir()) and not (data / name).exists():
                        data.mkdir(parents=True, exist_ok=True)
                        (data / name).symlink_to(found, target_is_directory=True)
                        print(f"Set-up ({platform}): using the data set in {found}")
            for found in sorted(root.glob(depth + "checkpoints/*.pth")) if hub is not None else []:
                if found.stat().st_size > 0 and not (hub / found.name).exists():
                    hub.mkdir(parents=True, exist_ok=True)
                    (hub / found.name).symlink_to(found)
                    print(f"Set-up ({platform}): using the weights {found}")
    # Results of earlier lessons the kit carries, where each lesson looks for them (never over a lesson's own).
    carried = manifest.get("results") if kit is not None else None
    placed = []
    for lesson in carried if isinstance(carried, dict) else {}:
        target = config.default_output_dir(lesson)
        names = [name for name in ("test_outcomes.json", "metrics.json") if f"results/{lesson}/{name}" in files]
        if lesson not in config.LESSONS or any((target / name).exists() for name in names):
            continue
        target.mkdir(parents=True, exist_ok=True)
        for name in names:  # metrics.json last: a lesson's results are there once it is
            (target / name).write_bytes(checked(f"results/{lesson}/{name}"))
        placed.append(lesson[:2])
    if placed:
        print(f"Set-up ({platform}): the kit's results of lessons {', '.join(placed)} "
              f"({', '.join(sorted(set(carried.values())))} profile) are in {config.default_output_dir('')}")
    print(f"Set-up ({platform}): data in {data}, outputs in {config.default_output_dir('')}")
    try:
        gpu = torch.cuda.is_available()
        device = f"cuda ({torch.cuda.get_device_name(0)})" if gpu else "cpu (switch on a GPU runtime)"
    except Exception:  # the lesson reports the device again once it starts
        gpu, device = False, "unknown"
    # The profile: the kit's manifest says which ones it serves with no network.
    served = manifest.get("profiles") if kit is not None else None
    asked = os.environ.get("COURSE_PROFILE", "").strip().lower()
    if isinstance(served, list) and (asked or ("full" if gpu else "offline")) not in served:
        if asked:
            print(f"Set-up ({platform}): COURSE_PROFILE={asked}, but this kit serves {', '.join(served)}: the "
                  "lessons will try to download what it lacks; set COURSE_PROFILE=offline, or build the kit with "
                  "`course prefetch --kit DIR --profile full`.")
        else:
            os.environ["COURSE_PROFILE"] = "offline"
            print(f"Set-up ({platform}): this kit serves the offline profile (no GTSRB or ResNet weights in it), so "
                  "COURSE_PROFILE=offline despite the GPU; for the full profile build the kit with "
                  "`course prefetch --kit DIR --profile full`.")
    profile = os.environ.get("COURSE_PROFILE") or "chosen automatically (full with a GPU, else offline)"
    print(f"Set-up ({platform}): device {device}; profile {profile}")
