"""Hints in layers (issue 20): the first failure says what is wrong, checks.hint(N) a hint, checks.solution(N)
the answer; the registry in hints.py stays in step with the exercises of solutions/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from course_utils import checks, hints, models
from course_utils.checks import ExerciseError

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"
EXERCISE = re.compile(r"^\s*#\s*Exercise(?:\s+\d+)?\s*:\s*(?P<title>\S.*?)\s*$")
REFERENCE = re.compile(r"^\s*#\s*Reference:\s*(?P<line>\S.*?)\s*$")
# A written exercise's heading in markdown: "## 8. Exercise 6: ...", "## Exercise 4: ...", "**Exercise 5 (...)".
MARKDOWN_EXERCISE = re.compile(r"^(?:#+\s*(?:\d+\.\s*)?|\*\*)Exercise\s+(?P<number>\d+)\b", re.MULTILINE)


def exercises_of(path: Path) -> dict[int, dict]:
    """Read a solution notebook independently of checks.py: title, reference, solution lines, cell sources.

    A written exercise's answer lines ("written") are the solution lines of the markdown cells right above the
    code cell that carries its exercise comment; "headings" are the exercise numbers those markdown cells name.
    """
    found: dict[int, dict] = {}
    inside = False
    written: list[str] = []
    headings: list[int] = []
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            region = "### BEGIN SOLUTION" in source
            written += [line.strip() for line in source.split("### BEGIN SOLUTION", 1)[-1]
                        .split("### END SOLUTION", 1)[0].splitlines() if line.strip()] if region else []
            headings += [int(number) for number in MARKDOWN_EXERCISE.findall(source)]
            continue
        if cell["cell_type"] != "code":
            continue
        if found:
            found[len(found)]["cells"].append(source)
        for line in source.splitlines():
            if EXERCISE.match(line):
                found[len(found) + 1] = {"title": EXERCISE.match(line)["title"], "reference": None,
                                         "lines": [], "cells": [source], "written": written,
                                         "headings": headings}
                written, headings = [], []
            elif line.strip() == "### BEGIN SOLUTION":
                inside = True
            elif line.strip() == "### END SOLUTION":
                inside = False
            elif inside and found:
                reference = REFERENCE.match(line)
                if reference and found[len(found)]["reference"] is None:
                    found[len(found)]["reference"] = reference["line"]
                found[len(found)]["lines"].append(line.strip())
        written, headings = [], []
    return found


LESSONS = {path.stem: exercises_of(path) for path in sorted(SOLUTIONS.glob("*.ipynb"))}


def squeeze(text: str) -> str:
    return "".join(text.split())


def test_every_exercise_of_the_solutions_has_a_hint_and_nothing_else_has():
    assert LESSONS and set(LESSONS) == set(hints._EXERCISES)
    for lesson, exercises in LESSONS.items():
        assert set(exercises) == set(hints._EXERCISES[lesson]), lesson


@pytest.mark.parametrize("lesson", sorted(LESSONS))
def test_hints_do_not_give_the_answer_away(lesson):
    for number, exercise in LESSONS[lesson].items():
        hint = squeeze(hints._EXERCISES[lesson][number].hint)
        assert exercise["reference"] or exercise["written"], (lesson, number, "neither a skip line nor an answer")
        assert not exercise["reference"] or squeeze(exercise["reference"]) not in hint
        answer = exercise["lines"] + exercise["written"]
        leaked = [line for line in answer if len(squeeze(line)) >= 12 and squeeze(line) in hint]
        assert not leaked, (lesson, number, leaked)


def test_the_solutions_hold_written_exercises():
    """The parsing below would pass vacuously if no notebook had a written exercise."""
    written = {lesson: [number for number, exercise in exercises.items() if exercise["written"]]
               for lesson, exercises in LESSONS.items()}
    assert written == {"01_cnn_from_scratch": [6], "02_feature_extraction": [4], "03_fine_tuning": [3],
                       "04_unknown_class": [5], "05_your_own_images": [4], "06_scaling_out": []}


@pytest.mark.parametrize("lesson", sorted(LESSONS))
def test_every_exercise_has_a_hint_and_a_solution_that_differ(lesson, capsys):
    """Every exercise, coded or written (a markdown heading names its number), answers checks.hint(N) and
    checks.solution(N); the hint never holds an answer line, the solution holds the answer."""
    exercises = LESSONS[lesson]
    for number, exercise in exercises.items():
        # a heading above an exercise names it or one of the next (lesson 4 introduces Exercises 2 and 3 at once)
        assert all(number <= heading <= max(exercises) for heading in exercise["headings"]), (lesson, number)
        if exercise["written"]:
            assert exercise["headings"] == [number], (lesson, number, "the markdown heading names its number")
            assert not hints._EXERCISES[lesson][number].checks and exercise["reference"] is None
        checks.hint(number, lesson=lesson)
        hint = capsys.readouterr().out
        checks.solution(number, lesson=lesson)
        answer = capsys.readouterr().out
        assert hint.startswith(f"💡 Lesson {int(lesson[:2])}, Exercise {number} ({exercise['title']}): ")
        assert answer.startswith(f"🔑 Lesson {int(lesson[:2])}, Exercise {number} ({exercise['title']}): ")
        lines = [line for line in exercise["lines"] + exercise["written"] if len(squeeze(line)) >= 12]
        assert lines and not [line for line in lines if squeeze(line) in squeeze(hint)], (lesson, number)
        expected = exercise["written"] if exercise["written"] else [exercise["reference"]]
        assert all(squeeze(line) in squeeze(answer) for line in expected), (lesson, number)


@pytest.mark.parametrize("lesson", sorted(LESSONS))
def test_each_exercises_checks_are_the_ones_its_cells_call(lesson):
    for number, exercise in LESSONS[lesson].items():
        called = set(re.findall(r"checks\.(check_\w+)\(", "\n".join(exercise["cells"])))
        for name in hints._EXERCISES[lesson][number].checks:
            assert name in called and callable(getattr(checks, name)), (lesson, number, name)


def test_hint_and_solution_print_from_the_lesson_the_notebook_runs(capsys):
    namespace = {"LESSON": "01_cnn_from_scratch", "checks": checks}
    exec("checks.hint(3)", namespace)  # a notebook cell: the lesson comes from its LESSON variable
    shown = capsys.readouterr().out
    assert shown.startswith("💡 Lesson 1, Exercise 3 (Conv block): Four layers") and "checks.solution(3)" in shown
    exec("checks.solution(3)", namespace)
    shown = capsys.readouterr().out
    assert shown.startswith("🔑 Lesson 1, Exercise 3 (Conv block)") and "whole def/class block" in shown
    assert "\n    conv_block = models.conv_block\n" in shown and "solutions/01_cnn_from_scratch.ipynb" in shown
    checks.solution(2, lesson=2)  # a top-level answer: it replaces the raise line
    shown = capsys.readouterr().out
    assert "where the stub's raise line was" in shown and "model = models.replace_head(model, num_classes)" in shown
    checks.hint("class weights")  # by title, without a LESSON variable
    assert capsys.readouterr().out.startswith("💡 Lesson 4, Exercise 3 (Class weights")
    exec("checks.hint('MLP head')", namespace)  # another lesson's title, asked in lesson 1
    assert capsys.readouterr().out.startswith("💡 Lesson 5, Exercise 2 (Build an MLP head)")


def test_a_written_exercise_gets_its_reasoned_prediction_not_a_skip_line(capsys, monkeypatch):
    checks.solution(3, lesson=3)
    shown = capsys.readouterr().out
    assert shown.startswith("🔑 Lesson 3, Exercise 3 (Predict, then measure the BatchNorm mode): a written exercise")
    assert "BatchNorm **frozen** (inference mode) scores higher" in shown and "# Reference" not in shown
    assert "in the markdown cell above the cell that starts with '# Exercise 3'" in shown
    monkeypatch.setattr(hints, "_solution_notebook", lambda lesson: None)  # Colab: the package alone
    checks.solution("Exercise 5", lesson=4)
    shown = capsys.readouterr().out
    assert shown.startswith("🔑 Lesson 4, Exercise 5: a written exercise, so there is nothing to skip")
    assert "solutions/04_unknown_class.ipynb, in the markdown cell above" in shown
    assert "NotImplementedError" not in shown


def test_solution_says_where_the_answer_is_without_the_notebooks(capsys, monkeypatch):
    monkeypatch.setattr(hints, "_solution_notebook", lambda lesson: None)  # Colab: the package alone
    checks.solution(1, lesson="L5")
    shown = capsys.readouterr().out
    assert shown.startswith("🔑 Lesson 5, Exercise 1: the answer is in the course's solutions/05_your_own_images.ipynb")
    assert "'# Exercise 1'" in shown and "Reference" in shown
    checks.hint(1, lesson=5)
    assert capsys.readouterr().out.startswith("💡 Lesson 5, Exercise 1: Count the images")


@pytest.mark.parametrize(("call", "message"), [
    (lambda: checks.hint(3), "Which lesson\\? Outside a lesson notebook say it: checks.hint\\(3, lesson=1\\)"),
    (lambda: checks.hint(9, lesson=1), "Lesson 1 has Exercises 1 to 6; there is no Exercise 9"),
    (lambda: checks.hint(1, lesson=8), "There is no lesson 8"),
    (lambda: checks.hint("no such title"), "matches no exercise"),
])
def test_hint_asks_plainly_when_it_cannot_tell_which_exercise(call, message):
    with pytest.raises(ExerciseError, match=message) as caught:
        call()
    assert len(caught.value._render_traceback_()) == 1


def test_a_failed_check_points_to_its_hint_in_a_lesson_notebook():
    namespace = {"LESSON": "01_cnn_from_scratch", "checks": checks}
    with pytest.raises(ExerciseError, match=r"must stay 32x32.*\(Stuck\? checks.hint\(2\) gives a hint.\)$"):
        exec("checks.check_padding(lambda kernel_size, dilation=1: 0)", namespace)
    namespace["LESSON"] = "05_your_own_images"  # check_optimizer_groups is Exercise 3 there
    model = models.replace_head(torchvision.models.resnet18(), 4)
    namespace["optimizer"], namespace["model"] = torch.optim.SGD(model.fc.parameters(), lr=0.1), model
    with pytest.raises(ExerciseError, match=r"checks.hint\(3\) gives a hint.\)$"):
        exec("checks.check_optimizer_groups(optimizer, model)", namespace)


def resnet():
    return models.replace_head(torchvision.models.resnet18(), 4)


def unfrozen_resnet():
    return resnet().requires_grad_(True)


def attribute_slip() -> nn.Module:
    model = nn.Linear(3, 2)
    model.requires_grad = False  # sets an attribute, freezes nothing
    return model


def everything_in_one_group(model: nn.Module) -> None:
    checks.check_optimizer_groups(torch.optim.SGD(model.parameters(), lr=0.1), model)


def answers_it_gave(call) -> str:
    with pytest.raises(ExerciseError) as caught:
        call()
    return str(caught.value)


@pytest.mark.parametrize(("call", "answer"), [
    (lambda: checks.check_all_frozen(attribute_slip()), "requires_grad_(False)"),
    (lambda: checks.check_frozen(unfrozen_resnet()), "freeze_backbone"),
    (lambda: checks.check_head(torchvision.models.resnet18(), 4), "replace_head"),
    (lambda: checks.check_unfrozen_last_blocks(models.freeze_backbone(resnet()), 2), "models.unfreeze"),
    (lambda: everything_in_one_group(models.freeze_backbone(resnet())), "parameter_groups"),
    (lambda: checks.check_class_weights(1 / torch.tensor([2.0, 6.0]), torch.tensor([2.0, 6.0]), ["a", "b"]),
     "counts.sum()"),
    (lambda: checks.check_threshold(float(np.quantile(np.linspace(0.3, 1.0, 200), 0.95)),
                                    np.linspace(0.3, 1.0, 200), 0.95), "np.quantile"),
    (lambda: checks.check_train_siblings(lambda split: 4), "s.group for s in split.train"),
    (lambda: checks.check_mlp_head(nn.Linear(8, 3), 8, 16, 3), "replace_head(model"),
])
def test_the_first_failure_does_not_contain_the_answer(call, answer):
    assert answer not in answers_it_gave(call)
