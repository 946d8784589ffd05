"""Lesson 4's self-checks: the unknown class, class weights, probabilities and a threshold.

Students call them as ``checks.check_...`` (:mod:`course_utils.checks`); what they share is in
:mod:`course_utils.checks_common`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from course_utils.checks_common import (
    _describe,
    _fail,
    _passed,
    _run,
    _type_name,
)
from course_utils.config import UNKNOWN_CLASS
from course_utils.image_files import to_numpy

__all__ = ["check_class_weights", "check_held_out_types", "check_probabilities",
           "check_split_has_no_leak", "check_threshold", "check_unknown_layout"]


def check_unknown_layout(
    classes: Sequence[str], known: Sequence[str], unknown_name: str = UNKNOWN_CLASS
) -> None:
    """Check the class list of the "known classes + unknown" layout of lesson 4."""
    if classes is None or isinstance(classes, str) or not hasattr(classes, "__iter__"):
        _fail(f"The classes are a {_type_name(classes)}; expected a list of class names.")
    classes = list(classes)
    if unknown_name not in classes:
        _fail(f"There is no {unknown_name!r} class: fold every sign that is not one of {list(known)} into "
              f"one class named {unknown_name!r}.")
    lost = [name for name in known if name not in classes]
    if lost:
        _fail(f"The known class(es) {lost} are missing: keep every known class as it is.")
    extra = [name for name in classes if name not in known and name != unknown_name]
    if extra:
        _fail(f"The class(es) {extra[:5]} should have been folded into {unknown_name!r}: only the known "
              f"classes and {unknown_name!r} remain.")
    if len(classes) != len(set(classes)):
        _fail("A class name appears twice in the class list.")
    _passed(f"{len(known)} known classes plus {unknown_name!r}.")


def _expect_split(split: Any, what: str) -> None:
    missing = [name for name in ("train", "val", "test") if not hasattr(split, name)]
    if missing:
        _fail(f"{what} is a {_type_name(split)}, not a split with train, val and test parts (splits.Split).")


def check_split_has_no_leak(split: Any) -> None:
    """Check that no group (a sign's track) appears in more than one of train, val and test."""
    _expect_split(split, "The split")
    parts = {name: {sample.group for sample in getattr(split, name)} for name in ("train", "val", "test")}
    for name, groups in parts.items():
        if not groups:
            _fail(f"The {name} part is empty: every part needs some groups.")
    names = list(parts)
    for position, first in enumerate(names):
        for second in names[position + 1:]:
            shared = sorted(parts[first] & parts[second])
            if shared:
                _fail(f"{len(shared)} group(s) appear in both {first} and {second}, e.g. {shared[0]!r}: "
                      "frames of one physical sign would be on both sides and inflate the score. Split by "
                      "group (tracks), not by image (group_aware=True).")
    counts = ", ".join(f"{len(groups)} {name}" for name, groups in parts.items())
    _passed(f"No group is shared between parts ({counts} groups).")


def check_held_out_types(split: Any, source: Any, held_out: Sequence[str]) -> None:
    """Check lesson 4's unknown-class split against the split with every sign type it was built from.

    ``split`` has the known classes plus "unknown"; ``source`` is the split of all sign types
    (``load_dataset(..., classes="all")``); ``held_out`` are sign types that must never be trained on, not
    even as "unknown": they may appear only in the test part, which keeps every image of ``source.test``.
    """
    _expect_split(split, "The new split")
    type_of = {sample.path: source.classes[sample.label]
               for part in (source.train, source.val, source.test) for sample in part}
    held = set(held_out)
    for name in ("train", "val", "test"):
        part = getattr(split, name)
        if name != "test":
            found = [type_of.get(sample.path) for sample in part if type_of.get(sample.path) in held]
            if found:
                _fail(f"{len(found)} image(s) of the held-out sign type(s) {sorted(set(found))} are in {name}: "
                      "drop them from train and val (only), so that the test shows how the model treats sign "
                      "types it never saw.")
        kept = {sample.path for sample in part}
        lost = [type_of[sample.path] for sample in getattr(source, name)
                if sample.path not in kept and (name == "test" or type_of[sample.path] not in held)]
        if lost:
            where = "every test image, held-out types included" if name == "test" else \
                "every image of the sign types that are not held out"
            _fail(f"The {name} part lost {len(lost)} image(s) of {sorted(set(lost))[:5]}: keep {where}.")
        for sample in part:
            sign = type_of.get(sample.path)
            name_wanted = sign if sign in split.classes else UNKNOWN_CLASS
            if name_wanted not in split.classes:
                continue  # check_unknown_layout reports a missing "unknown" class
            wanted = split.classes.index(name_wanted)
            if sample.label != wanted:
                _fail(f"A {sign!r} image in {name} has label {sample.label} ({split.classes[sample.label]!r}), "
                      f"expected {wanted} ({split.classes[wanted]!r}): relabel with splits.with_unknown_class.")
    missing = sorted(held - {type_of[sample.path] for sample in split.test})
    if missing:
        _fail(f"The held-out sign type(s) {missing} have no test images: hold out types that the data set has.")
    in_test = sum(type_of[sample.path] in held for sample in split.test)
    _passed(f"{len(held)} held-out sign type(s) appear only in test ({in_test} images); train and val keep "
            "every other sign type.")


def check_class_weights(class_weights: Any, counts: Any, classes: Sequence[str]) -> None:
    """Check per-class loss weights inversely proportional to the training images per class.

    ``counts[i]`` is the number of training images of ``classes[i]``; the weights must be a float tensor
    (what ``nn.CrossEntropyLoss(weight=...)`` takes), one positive number per class, with ``weight * count``
    the same for every class, scaled as scikit-learn's "balanced" weights: a balanced data set gets weight 1.

    The scale does not change the loss: with its default mean reduction, ``nn.CrossEntropyLoss`` divides the
    weighted sum by the sum of the weights of the batch's labels, so a common factor cancels. A weight of
    1 for "its fair share" makes the printed weights readable, which is why the exercise asks for it.
    """
    if not isinstance(class_weights, torch.Tensor):
        _fail(f"class_weights is a {_type_name(class_weights)}; nn.CrossEntropyLoss(weight=...) takes a float "
              "tensor, and the next cells use tensor methods on it: compute the weights from the counts tensor.")
    if not class_weights.is_floating_point():
        _fail(f"class_weights holds {class_weights.dtype} numbers; the loss needs floats: divide with /, not //.")
    weights = to_numpy(class_weights).astype(float).ravel()
    numbers = to_numpy(counts).astype(float).ravel()
    if weights.shape != (len(classes),):
        _fail(f"Expected one weight per class ({len(classes)}), got shape {tuple(class_weights.shape)}.")
    if not np.isfinite(weights).all() or (weights <= 0).any():
        _fail("Every weight must be a positive finite number; a class without images would get an "
              "infinite weight.")
    products = weights * numbers
    if not np.allclose(products, products[0], rtol=1e-3):
        largest, smallest = classes[int(numbers.argmax())], classes[int(numbers.argmin())]
        if weights[int(numbers.argmax())] >= weights[int(numbers.argmin())]:
            _fail(f"The largest class ({largest!r}) gets at least the weight of the smallest ({smallest!r}): "
                  "the weight must shrink as the count grows.")
        _fail("weight * count differs between classes: make each weight inversely proportional to its "
              "class's count, so that every class adds the same total weight to the loss.")
    factor = float(products[0]) / (float(numbers.sum()) / len(numbers))
    if not math.isclose(factor, 1.0, rel_tol=1e-3):
        _fail(f"The ratios between the weights are right, and the loss would be the same: with its default mean "
              "reduction nn.CrossEntropyLoss divides by the summed weights of the batch's labels, so a common "
              f"factor cancels. But these weights are {factor:.3g} times the asked ones: the exercise scales them "
              "so that a balanced data set gets weight 1 everywhere (scikit-learn's 'balanced' weights), which "
              "makes them readable: above 1 a class counts more than its share of the images, below 1 less.")
    _passed(f"Weights from {weights.min():.2f} ({classes[int(weights.argmin())]!r}, the largest class) to "
            f"{weights.max():.2f}: every class adds the same total weight to the loss.")


def check_probabilities(probabilities: Any) -> None:
    """Check class probabilities: one row per image, every value in [0, 1], every row summing to 1.

    A tensor that still requires gradients is refused: probabilities for scoring are computed without them.
    """
    if probabilities is None:
        _fail("The probabilities are None: assign the softmax's result to the variable.")
    if isinstance(probabilities, torch.Tensor) and probabilities.requires_grad:
        rows = len(probabilities) if probabilities.dim() else 1
        _fail(f"The probabilities were computed with gradients on (requires_grad=True): PyTorch keeps the "
              f"computation graph of all {rows} rows for a backward pass that never comes, and "
              "NumPy refuses such a tensor. Compute them inside `with torch.no_grad():` (or .detach() them).")
    try:
        values = to_numpy(probabilities).astype(float)
    except (TypeError, ValueError, RuntimeError) as error:
        _fail(f"Expected a tensor or an array of probabilities, got a {_type_name(probabilities)} that NumPy "
              f"cannot read: {_describe(error)}.")
    if values.ndim != 2:
        _fail(f"Expected one row per image and one column per class (2-D), got shape {values.shape}.")
    if values.size == 0:
        _fail("The probabilities are empty: compute them for the images.")
    if values.min() < 0 or values.max() > 1:
        _fail(f"Values range from {values.min():.3g} to {values.max():.3g}, outside [0, 1]: these look like "
              "logits; turn them into probabilities with a softmax over the class dimension (dim=1, the last).")
    rows = values.sum(axis=1)
    if not np.allclose(rows, 1, atol=1e-4):
        if values.shape[0] > 1 and np.allclose(values.sum(axis=0), 1, atol=1e-4):
            _fail("The columns sum to 1 instead of the rows: the softmax ran over the batch; use dim=1.")
        _fail(f"Rows sum to values between {rows.min():.3g} and {rows.max():.3g}, not 1: use softmax over "
              "the classes (dim=1), not a sigmoid per class.")
    rows = "1 row" if values.shape[0] == 1 else f"{values.shape[0]} rows"
    _passed(f"{rows} of probabilities over {values.shape[1]} classes, each summing to 1.")


def _max_softmax(head: nn.Module, features: Any) -> np.ndarray:
    """The maximum softmax probability of ``head`` on each row of ``features``."""
    logits = _run(head, torch.as_tensor(features))
    return torch.softmax(logits.float(), dim=-1).max(dim=-1).values.cpu().numpy().astype(float)


def check_threshold(threshold: Any, known_scores: Any, keep: float, *, head: nn.Module | None = None,
                    validation_features: Any = None, test_features: Any = None) -> None:
    """Check a threshold on confidence scores that keeps about ``keep`` of the known-class images.

    Given only the scores, the check can tell a threshold that keeps the wrong share, not where the
    scores came from. With ``head`` and ``validation_features`` it recomputes the validation images'
    maximum softmax probabilities itself: ``known_scores`` must be those, and the threshold must keep the
    same validation images as ``evaluation.threshold_keeping`` (one image more or fewer, for a quantile that
    interpolates). With ``test_features`` too, a threshold equal to a test image's score (and to no
    validation score) is refused: it was computed on the test images, which must not choose it.
    """
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        shape = tuple(threshold.shape) if hasattr(threshold, "shape") else _type_name(threshold)
        _fail(f"The threshold is a {shape}; it must be one number (a float).")
    try:
        scores = to_numpy(known_scores).astype(float).ravel()
    except (TypeError, ValueError) as error:
        _fail(f"The scores are a {_type_name(known_scores)} that NumPy cannot read: {_describe(error)}.")
    if scores.size == 0:
        _fail("There are no scores: compute one score per known-class validation image.")
    if (head is None) != (validation_features is None):
        raise TypeError("check_threshold needs head= and validation_features= together.")
    exact = head is not None
    if exact:
        reference = _max_softmax(head, validation_features)
        if len(scores) != len(reference):
            _fail(f"There are {len(scores)} scores, but {len(reference)} validation images: compute one score per "
                  "validation image, from the validation features only (never from the test images).")
        if not np.allclose(scores, reference, atol=1e-4):
            largest = float(np.abs(scores - reference).max())
            _fail(f"The scores differ from the maximum softmax probabilities of the head on the validation "
                  f"features (by up to {largest:.3g}): compute the probabilities from the validation features, "
                  "then take each row's maximum.")
    if math.isnan(value):
        _fail("The threshold is NaN: compute it from the known-class scores.")
    if scores.min() >= 0 and scores.max() <= 1 and not 0 <= value <= 1:
        _fail(f"The threshold {value:.3g} lies outside [0, 1], where the scores are.")
    if exact and test_features is not None:
        test_scores = _max_softmax(head, test_features)
        if np.isclose(test_scores, value, rtol=0, atol=1e-6).any() and \
                not np.isclose(scores, value, rtol=0, atol=1e-6).any():
            _fail(f"The threshold {value:.4g} is the score of a test image, not of a validation image: it was "
                  "computed on the test images. Choose it on the validation scores only: a threshold picked on "
                  "the test set makes the test result look better than it will be on new images.")
    kept = float((scores >= value).mean())
    if exact:
        from course_utils.evaluation import threshold_keeping

        wanted = int((scores >= threshold_keeping(scores, keep)).sum())
        right = abs(int((scores >= value).sum()) - wanted) <= 1
        tolerance = 1.5 / len(scores)
    else:
        tolerance = 1 / len(scores) + 0.01
        right = abs(kept - keep) <= tolerance
    if not right:
        hint = (" It keeps the share that should be rejected: take the score below which only (1 - keep) of the "
                "known images fall." if abs(kept - (1 - keep)) <= max(tolerance, 0.02) else "")
        source = " Compute it from the validation scores, never from test images." if exact else ""
        _fail(f"The threshold {value:.3g} keeps {kept:.1%} of the known-class images, but should keep "
              f"{keep:.1%}.{hint}{source}")
    _passed(f"Threshold {value:.3f} keeps {kept:.1%} of known-class images.")
