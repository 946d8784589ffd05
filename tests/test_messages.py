"""One switch for every line the package prints (course_utils.messages)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import write_image

from course_utils import messages
from course_utils.datasets import scan_image_folder
from course_utils.progress import open_progress_bar

PACKAGE = Path(messages.__file__).parent


@pytest.fixture(autouse=True)
def default_level():
    messages.set_messages("all")
    yield
    messages.set_messages("all")


@pytest.mark.parametrize(("level", "printed"), [("all", "said\nwarned\n"), ("warnings", "warned\n"), ("none", "")])
def test_each_level_prints_what_it_promises(level, printed, capsys):
    messages.set_messages(level)
    messages.say("said")
    messages.warn("warned")
    assert capsys.readouterr().out == printed


def test_quiet_messages_restores_the_level_after_an_error(capsys):
    messages.set_messages("all")
    with pytest.raises(RuntimeError), messages.quiet_messages("none"):
        messages.warn("hidden")
        raise RuntimeError("stop")
    assert messages.current_level() == "all"
    messages.say("shown")
    assert capsys.readouterr().out == "shown\n"


def test_an_unknown_level_is_refused_and_the_choices_named():
    with pytest.raises(ValueError, match=r"'quiet'.*'all', 'warnings', 'none'"):
        messages.set_messages("quiet")
    assert messages.current_level() == "all"


def messy_folder(root: Path) -> Path:
    for name in ("Cat", "cat", "dog"):
        for index in range(2):
            write_image(root / name / f"{index}.png")
    (root / "dog" / "broken.jpg").write_bytes(b"not an image")
    return root


def test_one_switch_quiets_a_library_function_and_warnings_stay_at_warnings(tmp_path, capsys):
    folder = messy_folder(tmp_path / "photos")
    scan_image_folder(folder)
    everything = capsys.readouterr().out
    assert "ℹ️ Class folders" in everything and "⚠️ Skipped 1 of 7 files" in everything

    with messages.quiet_messages("warnings"):
        scan_image_folder(folder)
    only_warnings = capsys.readouterr().out
    assert "⚠️ Skipped 1 of 7 files" in only_warnings and "ℹ️" not in only_warnings

    with messages.quiet_messages("none"):
        samples, classes = scan_image_folder(folder)
    assert capsys.readouterr().out == ""
    assert classes == ["Cat", "cat", "dog"] and len(samples) == 6  # quiet, not different


def test_progress_bars_are_hidden_below_all():
    with messages.quiet_messages("warnings"):
        hidden = open_progress_bar(total=3, description="features")
    shown = open_progress_bar(total=3, description="features")
    try:
        assert hidden.disable and not shown.disable
    finally:
        hidden.close()
        shown.close()


def test_the_environment_sets_the_starting_level_and_a_wrong_value_is_named():
    def start(value: str) -> subprocess.CompletedProcess:
        code = "from course_utils import messages; print(messages.current_level())"
        return subprocess.run([sys.executable, "-c", code],
                              env={**os.environ, "COURSE_MESSAGES": value}, capture_output=True, text=True)

    assert start("warnings").stdout.strip() == "warnings"
    wrong = start("silent")
    assert wrong.returncode != 0 and "COURSE_MESSAGES is 'silent'" in wrong.stderr


def test_library_code_prints_only_through_messages():
    printing = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "messages.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                printing.append(f"{path.name}:{node.lineno}")
    assert printing == []
