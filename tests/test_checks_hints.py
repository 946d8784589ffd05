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


def exercises_of(path: Path) -> dict[int, dict]:
    """Read a solution notebook independently of checks.py: title, reference, solution lines, cell sources."""
    found: dict[int, dict] = {}
    inside = False
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if found:
            found[len(found)]["cells"].append(source)
        for line in source.splitlines():
            if EXERCISE.match(line):
                found[len(found) + 1] = {"title": EXERCISE.match(line)["title"], "reference": None,
                                         "lines": [], "cells": [source]}
            elif line.strip() == "### BEGIN SOLUTION":
                inside = True
            elif line.strip() == "### END SOLUTION":
                inside = False
            elif inside and found:
                reference = REFERENCE.match(line)
                if reference and found[len(found)]["reference"] is None:
                    found[len(found)]["reference"] = reference["line"]
                found[len(found)]["lines"].append(line.strip())
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
        assert exercise["reference"] and squeeze(exercise["reference"]) not in hint
        leaked = [line for line in exercise["lines"] if len(squeeze(line)) >= 12 and squeeze(line) in hint]
        assert not leaked, (lesson, number, leaked)


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
    (lambda: checks.hint(9, lesson=1), "Lesson 1 has Exercises 1 to 5; there is no Exercise 9"),
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
