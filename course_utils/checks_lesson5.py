"""Lesson 5's self-checks: your own images (rare classes, an MLP head).

Students call them as ``checks.check_...`` (:mod:`course_utils.checks`); what they share is in
:mod:`course_utils.checks_common`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from course_utils.checks_common import (
    _call_answer,
    _expect_module,
    _fail,
    _layers,
    _passed,
    _type_name,
)

__all__ = ["check_mlp_head", "check_rare_classes"]


def _class_names(answer: Any, classes: Sequence[str], what: str) -> list[str]:
    """``answer`` as a sorted list of class names, or one ❌ line saying what it is instead."""
    if answer is None:
        _fail(f"{what} is None: did you forget `return` (or to assign the list)?")
    if isinstance(answer, str) or not hasattr(answer, "__iter__"):
        _fail(f"{what} is a {_type_name(answer)}; expected a list of class names, e.g. {list(classes)[:2]}.")
    names = list(answer)
    numbers = [name for name in names if isinstance(name, (int, np.integer)) and not isinstance(name, bool)]
    if numbers:
        _fail(f"{what} holds class indices ({numbers[:3]}); give the class names: classes[index].")
    return sorted(str(name) for name in names)


def check_rare_classes(too_small: Any, samples: Sequence[Any], classes: Sequence[str], min_count: int) -> None:
    """Check the classes with fewer than ``min_count`` images (lesson 5, Exercise 1).

    ``too_small`` is the sorted list of their names, or a function ``(samples, classes, min_count) -> list``
    that makes it. A list can only be judged on this data: when no class has exactly ``min_count`` images,
    "fewer than" (<) and "at most" (<=) give the same list. A function is also tried on a small made-up data
    set with a class of exactly ``min_count`` images, which tells them apart whatever the real counts are.
    """
    counts = {name: 0 for name in classes}
    for sample in samples:
        counts[classes[sample.label]] += 1
    expected = sorted(name for name, count in counts.items() if count < min_count)
    boundary = sorted(name for name, count in counts.items() if count == min_count)
    if callable(too_small):
        _try_rare_classes_on_a_toy(too_small, min_count)
        answer = _class_names(_call_answer(too_small, samples, classes, min_count), classes, "Your function's answer")
    else:
        answer = _class_names(too_small, classes, "too_small")
    if boundary and answer == sorted(expected + boundary):
        _fail(f"Your answer also lists {boundary}, with exactly {min_count} images: 'fewer than {min_count}' means "
              f"< {min_count}; a class with exactly {min_count} images stays.")
    if answer != expected:
        _fail(f"Expected the classes with fewer than {min_count} images, {expected}, got {answer}. Count the "
              "samples per class (sample.label is an index into classes).")
    _passed(f"{len(expected)} class(es) below {min_count} images: {', '.join(expected) or 'none'}.")


def _try_rare_classes_on_a_toy(function: Callable[..., Any], min_count: int) -> None:
    """Run the student's function on classes with ``min_count - 1``, ``min_count`` and ``min_count + 1`` images."""
    from course_utils.samples import Sample

    toy_classes = ["fewer", "exactly", "more"]
    sizes = [max(min_count - 1, 0), min_count, min_count + 1]
    toy = [Sample(Path(f"{name}/{index}.png"), label, f"{name}/{index}")
           for label, (name, size) in enumerate(zip(toy_classes, sizes, strict=True)) for index in range(size)]
    answer = _class_names(_call_answer(function, toy, toy_classes, min_count), toy_classes, "Your function's answer")
    if "exactly" in answer:
        _fail(f"On a small made-up folder your function also drops a class with exactly {min_count} images: "
              f"'fewer than {min_count}' means < {min_count}; a class with exactly {min_count} images stays.")
    if answer != ["fewer"]:
        _fail(f"On a small made-up folder with classes of {sizes[0]}, {sizes[1]} and {sizes[2]} images your function "
              f"returns {answer}; only the class with {sizes[0]} images has fewer than {min_count}.")


def check_mlp_head(head: nn.Module, in_features: int, hidden_units: int, num_classes: int) -> None:
    """Check a head with one hidden layer: in_features -> hidden_units -> ReLU -> num_classes (lesson 5)."""
    _expect_module(head, "The head")
    if _layers(head, (nn.Conv2d, nn.BatchNorm2d)):
        _fail("This is the whole model (it has convolutions and batch norms), not its head: pass only the head, "
              "the module that models.find_head returns for the model (its second value).")
    linears = [module for module in head.modules() if isinstance(module, nn.Linear)]
    shapes = [(module.in_features, module.out_features) for module in linears]
    if shapes != [(in_features, hidden_units), (hidden_units, num_classes)]:
        _fail(f"Expected two linear layers {in_features}->{hidden_units}->{num_classes}, got {shapes}: the head "
              f"needs one hidden layer of {hidden_units} units (replace_head's hidden_units takes one number per "
              "hidden layer).")
    if not any(isinstance(module, nn.ReLU) for module in head.modules()):
        _fail("The hidden layer needs a non-linearity (ReLU), or the two layers act as a single linear one.")
    if not all(parameter.requires_grad for parameter in head.parameters()):
        _fail("The new head must be trainable (requires_grad=True).")
    trainable = sum(parameter.numel() for parameter in head.parameters())
    _passed(f"MLP head {in_features} -> {hidden_units} -> {num_classes}: {trainable:,} trainable parameters.")
