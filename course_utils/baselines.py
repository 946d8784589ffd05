"""Simple baselines on raw pixels: how far do you get without a neural network?

Before you trust a model's 90%, ask what a much simpler method scores on the same split. Two classics, on small
thumbnails (each image shrunk to ``side`` x ``side`` pixels, every thumbnail pixel the average of the pixels it
covers), fitted on the training part with scikit-learn:

- **1-nearest-neighbour** (:func:`nearest_neighbour`): a test image gets the label of the training image whose
  pixels are closest (Euclidean distance). It wins where test images look like training images pixel for pixel.
- **logistic regression** (:func:`logistic_regression`): one linear function of the (standardised) pixels per
  class: a linear model on pixels instead of on a backbone's features.

Both return a :class:`BaselineResult` with ``correct``, one 1/0 per test image in the order of ``split.test``,
so that a finding compares them with your model on the same images::

    knn = baselines.nearest_neighbour(split)
    findings.compare_accuracy("model beats 1-NN", model_correct, knn.correct, [s.group for s in split.test],
                              labels=("model", knn.name))

When the split is too small to fit a baseline (an empty test part, a class with fewer than two training images,
fewer than two classes), one line says so and the result is *skipped*: ``correct`` is None.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from course_utils import messages
from course_utils.image_files import load_rgb
from course_utils.samples import Sample
from course_utils.splits import Split

__all__ = ["THUMBNAIL_SIDE", "BaselineResult", "logistic_regression", "nearest_neighbour", "thumbnails"]

#: Side of the thumbnails in pixels: 16 x 16 x 3 = 768 numbers per image.
THUMBNAIL_SIDE = 16


@dataclass
class BaselineResult:
    """One baseline on one split: ``correct`` (1.0/0.0 per test image, in ``split.test`` order) and
    ``predicted`` (class indices), or both None with ``skipped`` saying why the baseline could not run."""

    name: str
    correct: np.ndarray | None
    predicted: np.ndarray | None
    skipped: str | None = None

    @property
    def accuracy(self) -> float | None:
        """The test accuracy, between 0 and 1 (None when skipped)."""
        return float(self.correct.mean()) if self.correct is not None else None

    def __str__(self) -> str:
        if self.correct is None:
            return f"{self.name}: skipped ({self.skipped})"
        return f"{self.name}: test accuracy {self.accuracy:.1%} on {len(self.correct)} images"


def thumbnails(samples: Sequence[Sample], side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """Each image shrunk to ``side`` x ``side`` RGB pixels and flattened: an ``(images, side * side * 3)`` array of
    numbers in [0, 1]."""
    if side < 1:
        raise ValueError(f"side must be at least 1 pixel, got {side}.")
    rows = [np.asarray(load_rgb(sample.path).resize((side, side), Image.BOX), dtype=np.float32).ravel() / 255
            for sample in samples]
    return np.stack(rows) if rows else np.zeros((0, side * side * 3), dtype=np.float32)


def _problem(split: Split) -> str | None:
    """Why a baseline cannot be fitted on this split, or None."""
    if not split.test:
        return "the test part is empty"
    counts = Counter(sample.label for sample in split.train)
    if len(counts) < 2:
        return f"the training part holds {len(counts)} class(es); a classifier needs two"
    used = {sample.label for sample in (*split.train, *split.test)}
    rare = [f"{split.classes[label]} ({counts[label]})" for label in sorted(used) if counts[label] < 2]
    if rare:
        return (f"class(es) with fewer than 2 training images: {', '.join(rare)}; add images or drop them "
                "with splits.drop_rare_classes()")
    return None


def _fit_and_score(split: Split, name: str, classifier: Any, side: int, verbose: bool) -> BaselineResult:
    problem = _problem(split)
    if problem is not None:
        messages.say(f"ℹ️ Baseline {name} skipped: {problem}.")
        return BaselineResult(name, None, None, problem)
    train_labels = np.array([sample.label for sample in split.train])
    test_labels = np.array([sample.label for sample in split.test])
    classifier.fit(thumbnails(split.train, side), train_labels)
    predicted = np.asarray(classifier.predict(thumbnails(split.test, side)))
    result = BaselineResult(name, (predicted == test_labels).astype(float), predicted)
    if verbose:
        messages.say(str(result))
    return result


def nearest_neighbour(split: Split, *, side: int = THUMBNAIL_SIDE, verbose: bool = True) -> BaselineResult:
    """1-nearest-neighbour on ``side`` x ``side`` thumbnails: fitted on ``split.train``, scored on ``split.test``."""
    from sklearn.neighbors import KNeighborsClassifier

    return _fit_and_score(split, f"1-NN on {side}x{side} thumbnails", KNeighborsClassifier(n_neighbors=1), side,
                          verbose)


def logistic_regression(split: Split, *, side: int = THUMBNAIL_SIDE, verbose: bool = True) -> BaselineResult:
    """Logistic regression on standardised ``side`` x ``side`` thumbnails (scikit-learn, L2 penalty ``C=1``):
    fitted on ``split.train``, scored on ``split.test``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return _fit_and_score(split, f"logistic regression on {side}x{side} thumbnails", classifier, side, verbose)
