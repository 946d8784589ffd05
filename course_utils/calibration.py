"""Calibration: when a classifier says 90%, is it right 9 times in 10?

A classifier's **confidence** is its highest softmax probability. It is *calibrated* when, among the images it
answers with a confidence near ``p``, a share ``p`` is right. Guo, Pleiss, Sun and Weinberger (2017, "On
Calibration of Modern Neural Networks") measure this with two tools this module computes:

- a **reliability diagram** (:func:`reliability_bins`): sort the images into equal-width confidence bins
  (0-1/15, ..., 14/15-1) and compare each bin's accuracy with its mean confidence; a calibrated model's bars
  follow the diagonal;
- the **expected calibration error** (:func:`expected_calibration_error`, ECE): the gap
  ``|accuracy - mean confidence|`` of each bin, averaged over the bins weighted by their share of the images.
  0 is perfect; a model that says 100% and is right 90% of the time has an ECE of 0.10.

They also propose the simplest repair, **temperature scaling** (:func:`fit_temperature`): divide the logits by
one number ``T`` before the softmax, with ``T`` chosen on *validation* images to minimise the negative
log-likelihood. ``T > 1`` softens an over-confident model, ``T < 1`` sharpens an under-confident one, and the
largest logit stays the largest, so every prediction (and the accuracy) stays as it was.

:func:`compare_calibration_error` turns two ECEs on the same test images into a finding with a group-bootstrap
interval (see :mod:`course_utils.findings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from course_utils import findings
from course_utils.image_files import to_numpy

__all__ = ["BINS", "TEMPERATURE_RANGE", "compare_calibration_error", "expected_calibration_error",
           "fit_temperature", "reliability_bins"]

#: Number of equal-width confidence bins, as in Guo et al. (2017).
BINS = 15

#: The temperatures :func:`fit_temperature` searches, from sharpening 20x to softening 20x.
TEMPERATURE_RANGE: tuple[float, float] = (0.05, 20.0)


def _confidences_and_correct(confidences: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    confidences = to_numpy(confidences).astype(float).reshape(-1)
    correct = to_numpy(correct).astype(float).reshape(-1)
    if confidences.size == 0 or confidences.size != correct.size:
        raise ValueError(f"{confidences.size} confidences and {correct.size} correct flags: give one of each per "
                         "image, for at least one image.")
    if not np.all((confidences >= 0) & (confidences <= 1)):
        raise ValueError("Confidences must lie between 0 and 1: pass softmax probabilities, not logits.")
    return confidences, correct


def _bin_of(confidences: np.ndarray, bins: int) -> np.ndarray:
    """The bin of each confidence: bin ``b`` holds ``(b/bins, (b+1)/bins]``, and 0 goes to the first bin."""
    if bins < 1:
        raise ValueError(f"bins={bins}: use at least one bin.")
    return np.clip(np.ceil(confidences * bins).astype(int) - 1, 0, bins - 1)


def reliability_bins(confidences: Any, correct: Any, *, bins: int = BINS) -> pd.DataFrame:
    """The table behind a reliability diagram: one row per confidence bin.

    ``confidences`` holds each image's confidence (its top softmax probability), ``correct`` 1 where the
    prediction was right. Columns: ``low`` and ``high`` (the bin's edges), ``images``, ``confidence`` (their
    mean confidence) and ``accuracy`` (their share of right answers); both are NaN for an empty bin.
    """
    confidences, correct = _confidences_and_correct(confidences, correct)
    index = _bin_of(confidences, bins)
    images = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidences, minlength=bins) / images
        accuracy = np.bincount(index, weights=correct, minlength=bins) / images
    edges = np.linspace(0.0, 1.0, bins + 1)
    return pd.DataFrame({"low": edges[:-1], "high": edges[1:], "images": images, "confidence": mean_confidence,
                         "accuracy": accuracy}, index=pd.RangeIndex(bins, name="bin"))


def expected_calibration_error(confidences: Any, correct: Any, *, bins: int = BINS,
                               weights: Any = None) -> float | np.ndarray:
    """The expected calibration error: ``sum over bins of (images in bin / all images) * |accuracy - confidence|``.

    Equivalently, the sum over bins of ``|sum of (confidence - correct) over the bin's images|``, divided by the
    number of images. With ``weights`` (an ``(rows, images)`` array of image weights, for example the group
    bootstrap's :func:`course_utils.findings.bootstrap_weights`), each row counts every image that many times
    and the result is one ECE per row; without, a single number.
    """
    confidences, correct = _confidences_and_correct(confidences, correct)
    one_hot = np.zeros((confidences.size, bins))
    one_hot[np.arange(confidences.size), _bin_of(confidences, bins)] = 1.0
    gaps = one_hot * (confidences - correct)[:, None]  # an image's (confidence - correct), in its bin's column
    if weights is None:
        return float(np.abs(gaps.sum(axis=0)).sum() / confidences.size)
    weights = np.atleast_2d(to_numpy(weights).astype(float))
    if weights.shape[1] != confidences.size:
        raise ValueError(f"weights has {weights.shape[1]} columns for {confidences.size} images: one per image.")
    return np.abs(weights @ gaps).sum(axis=1) / weights.sum(axis=1)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def fit_temperature(logits: Any, labels: Any, *, steps: int = 1201) -> float:
    """The temperature ``T`` that minimises the negative log-likelihood of ``softmax(logits / T)`` on ``labels``.

    Fit it on **validation** logits (never the test images'), then divide the test logits by it. The search
    tries ``steps`` temperatures spaced evenly on a log scale over :data:`TEMPERATURE_RANGE` (about 0.5% apart)
    and keeps the best. A validation set the model gets entirely right with a margin rewards ever sharper
    probabilities, so the fit then ends at the lower end of the range: it has seen no mistake to be humble about.
    """
    logits = to_numpy(logits).astype(float)
    labels = to_numpy(labels).astype(int).reshape(-1)
    if logits.ndim != 2 or logits.shape[0] != labels.size or labels.size == 0:
        raise ValueError(f"logits of shape {logits.shape} and {labels.size} labels: give one row of logits "
                         "(images x classes) and one label per image.")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must be class indices from 0 to {logits.shape[1] - 1}.")
    temperatures = np.geomspace(*TEMPERATURE_RANGE, steps)
    rows = np.arange(labels.size)
    losses = [-_log_softmax(logits / temperature)[rows, labels].mean() for temperature in temperatures]
    return float(temperatures[int(np.argmin(losses))])


def compare_calibration_error(name: str, confidences_a: Any, confidences_b: Any, correct: Any,
                              groups: Sequence[Any], *, labels: tuple[str, str] = ("A", "B"),
                              bins: int = BINS, margin: float = 0.0, claim: str | None = None, seed: int = 0,
                              verbose: bool = True, headline: bool = True) -> findings.Finding:
    """The finding "the confidences ``a`` have a larger ECE than the confidences ``b``" (``b`` is better calibrated).

    Both are confidences for the same predictions on the same test images (temperature scaling keeps every
    prediction, so one ``correct`` serves both); ``groups`` are their tracks. The difference ``ECE a - ECE b``
    gets a 95% group-bootstrap interval, as every finding does.
    """
    confidences_a, correct = _confidences_and_correct(confidences_a, correct)
    confidences_b, _ = _confidences_and_correct(confidences_b, correct)

    def both(weights: np.ndarray) -> np.ndarray:
        return np.stack([expected_calibration_error(confidences_a, correct, bins=bins, weights=weights),
                         expected_calibration_error(confidences_b, correct, bins=bins, weights=weights)], axis=1)

    return findings.compare_statistic(name, both, groups, labels=labels, metric="ECE", margin=margin, claim=claim,
                                      seed=seed, verbose=verbose, headline=headline)
