"""Where a lesson runs: the device, the random seeds, the platform (Colab, Kaggle, local) and the profile.

Every lesson starts with one call::

    env = start_lesson(PROFILE, seed=SEED)

which seeds every random number generator, picks the device, chooses the profile (``full``, ``offline`` or
``smoke``) and prints one line saying what was chosen and how to change it.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from course_utils import messages
from course_utils.config import PROFILES, on_kaggle
from course_utils.ipython_errors import current_shell
from course_utils.stop_at_error import stop_queued_cells_after_an_error

__all__ = ["PROFILE_VARIABLE", "LessonEnvironment", "choose_profile", "detect_platform", "profile_and_reason",
           "profile_banner", "seed_everything", "select_device", "show_exercise_stubs_briefly", "start_lesson"]

#: The environment variable that chooses the profile when a notebook does not.
PROFILE_VARIABLE = "COURSE_PROFILE"


@dataclass
class LessonEnvironment:
    """What :func:`start_lesson` chose for this lesson."""

    profile: str
    device: torch.device
    platform: str
    seed: int
    how_chosen: str


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def select_device(preferred: str | None = None) -> torch.device:
    """Return the best device: a CUDA GPU, else Apple's MPS, else the CPU.

    ``preferred`` (for example ``"cpu"``, ``"cuda"`` or ``"cuda:1"``) forces a device; asking for one this
    machine does not have raises ``RuntimeError`` instead of silently falling back.
    """
    if preferred:
        device = torch.device(preferred)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"Device {preferred!r} was asked for, but no CUDA GPU is available here.")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise RuntimeError(f"Device {preferred!r} was asked for, but this machine has {count} GPU(s).")
        if device.type == "mps" and not _mps_available():
            raise RuntimeError(f"Device {preferred!r} was asked for, but Apple's MPS is not available here.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and PyTorch (CPU and every GPU) so that a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def detect_platform() -> str:
    """Return ``"colab"``, ``"kaggle"`` or ``"local"`` depending on where this Python runs."""
    if "google.colab" in sys.modules or os.environ.get("COLAB_RELEASE_TAG"):
        return "colab"
    if on_kaggle():
        return "kaggle"
    return "local"


def _check_profile(value: str, source: str) -> str:
    profile = value.strip().lower()
    if profile not in PROFILES:
        raise ValueError(
            f"Unknown profile {value!r} (from {source}): choose one of {', '.join(PROFILES)}."
        )
    return profile


def profile_and_reason(profile: str | None = None) -> tuple[str, str]:
    """Like :func:`choose_profile`, but also return a few words saying how the profile was chosen."""
    if profile is not None and str(profile).strip():
        return _check_profile(str(profile), "the PROFILE parameter"), "set by the PROFILE parameter"
    from_environment = os.environ.get(PROFILE_VARIABLE, "").strip()
    if from_environment:
        source = f"the {PROFILE_VARIABLE} environment variable"
        return _check_profile(from_environment, source), f"set by {source}"
    if torch.cuda.is_available():
        return "full", "chosen automatically: a CUDA GPU is available"
    return "offline", "chosen automatically: no CUDA GPU found"


def choose_profile(profile: str | None = None) -> str:
    """Choose the profile: ``profile`` if given, else ``$COURSE_PROFILE``, else automatically.

    Automatically means ``"full"`` (real data, downloads) where a CUDA GPU is available and ``"offline"``
    (synthetic signs, packaged weights, no network) everywhere else. An unknown name raises ``ValueError``
    naming the valid ones and where the bad value came from.
    """
    return profile_and_reason(profile)[0]


def profile_banner(profile: str, device: torch.device | str, how_chosen: str) -> str:
    """Return the line every lesson prints: the profile, the device, how it was chosen, how to change it."""
    return (
        f"Profile: {profile} ({how_chosen}), device: {device}. To change it, set PROFILE in the parameters "
        f"cell or the {PROFILE_VARIABLE} environment variable to one of: {', '.join(PROFILES)}."
    )


def _brief_exercise_stub(shell: Any, etype: type, value: BaseException, tb: Any,
                         tb_offset: int | None = None) -> list[str]:
    """IPython handler for ``NotImplementedError``: an exercise stub's message alone, others in full."""
    if str(value).startswith("Exercise "):
        stb = [f"✏️ {line}" if number == 0 else line for number, line in enumerate(str(value).splitlines())]
    else:
        stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    shell._showtraceback(etype, value, stb)  # the cell still fails: Run All, papermill and nbval stop
    return stb


def show_exercise_stubs_briefly() -> bool:
    """In IPython/Jupyter, show an unsolved exercise's ``NotImplementedError`` as its message alone.

    The stubs of the student notebooks raise ``NotImplementedError("Exercise N: ...")``; the traceback
    would only repeat the cell. Returns whether a handler was installed (False outside IPython).
    """
    shell = current_shell()
    if shell is None:
        return False
    shell.set_custom_exc((NotImplementedError,), _brief_exercise_stub)
    return True


def start_lesson(profile: str | None = None, seed: int = 0, device: str | None = None) -> LessonEnvironment:
    """Set a lesson up: seed everything, choose the profile and the device, print the banner line.

    Returns a :class:`LessonEnvironment` holding what was chosen, for the rest of the notebook to use.
    """
    seed_everything(seed)
    chosen, how_chosen = profile_and_reason(profile)
    chosen_device = select_device(device)
    environment = LessonEnvironment(
        profile=chosen, device=chosen_device, platform=detect_platform(), seed=seed, how_chosen=how_chosen
    )
    messages.say(profile_banner(chosen, chosen_device, how_chosen))
    show_exercise_stubs_briefly()
    stop_queued_cells_after_an_error()  # Run All ends at the first red box, also after a quick failure
    return environment
