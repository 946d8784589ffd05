"""Findings: a lesson's verdicts ("A beats B") measured on the same test images, with their uncertainty.

A test set is a sample. Had other tracks landed in the test part, the accuracies would differ, and so could
the verdict. A *finding* therefore reports both methods' values on the same test images, their paired
difference, and a 95% confidence interval for that difference from a **group bootstrap**: resample whole
groups (the tracks: every frame of one physical sign goes in or out together; an image without a track is a
group of its own) with replacement, many times, and read the middle 95% of the recomputed differences.
Resampling single images instead would treat 30 near-identical frames of one sign as 30 independent pieces of
evidence and give an interval that is far too narrow.

A finding *holds* when the whole interval lies above the claimed margin. When it does not, the lesson prints
why that may be and goes on; with ``COURSE_STRICT_FINDINGS=1`` (the course's own claims run, on the data it
vouches for) it raises :class:`FindingError` instead. Every finding is recorded, and :func:`records` returns
them for ``metrics.json`` (key ``"findings"``). A finding made with ``headline=False`` is an observation the
course does not vouch for on its reference data: it is reported the same way but never raises.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from course_utils import messages
from course_utils.image_files import to_numpy

__all__ = ["OUTCOMES_FILE", "STRICT_VARIABLE", "Finding", "FindingError", "accuracy_interval", "auroc_interval",
           "bootstrap_weights", "clear", "compare_accuracy", "compare_auroc", "compare_independent",
           "compare_statistic", "compare_to_value", "expect", "format_line", "labelled_value", "load_outcomes",
           "print_accuracy", "records", "save_outcomes", "strict"]

#: File in a lesson's output folder with its per-image test results (read by the next lesson's comparison).
OUTCOMES_FILE = "test_outcomes.json"

#: Set this environment variable to ``1`` to make a finding that does not hold raise :class:`FindingError`.
STRICT_VARIABLE = "COURSE_STRICT_FINDINGS"

_RESAMPLES = 2000
_CHUNK = 250  # resamples computed at once (bounds the memory of the weight matrix)
_recorded: dict[str, Finding] = {}


class FindingError(AssertionError):
    """A finding did not hold while ``COURSE_STRICT_FINDINGS=1`` was set."""


@dataclass(frozen=True)
class Finding:
    """One verdict: ``label_a`` beats ``label_b`` by more than ``margin`` on the same test images.

    ``difference = value_a - value_b``; ``ci_low``/``ci_high`` bound its 95% group-bootstrap interval;
    ``held`` is true when ``ci_low > margin``.
    """

    name: str
    claim: str
    metric: str
    label_a: str
    label_b: str
    value_a: float
    value_b: float
    difference: float
    ci_low: float
    ci_high: float
    margin: float
    held: bool
    images: int
    groups: int
    headline: bool = True
    part: str = "test"  # which images: "test", or "validation" for a decision taken on validation

    def as_dict(self) -> dict[str, Any]:
        """The finding as plain JSON values (for ``metrics.json``)."""
        return {key: (bool(value) if key in ("held", "headline") else value) for key, value in asdict(self).items()}

    def line(self) -> str:
        """One line: both values, the difference, its interval and the verdict."""
        return format_line(self.as_dict())


def _format_value(value: float, metric: str) -> str:
    return f"{value:.3f}" if metric == "AUROC" else f"{value:.1%}"


def _format_difference(value: float, metric: str) -> str:
    return f"{value:+.3f}" if metric == "AUROC" else f"{value * 100:+.1f} points"


def labelled_value(label: str, value: float, metric: str = "accuracy") -> str:
    """``"CNN from scratch 66.4%"``; a label that only states the value itself (``"90%"`` for 0.9) is not
    repeated: ``"90.0%"``, not ``"90% 90.0%"``."""
    text = _format_value(value, metric)
    number = re.fullmatch(r"\s*([-+]?\d+(?:\.\d+)?)\s*(%?)\s*", str(label))
    if number:
        stated = float(number.group(1)) / (100 if number.group(2) else 1)
        if math.isclose(stated, value, abs_tol=5e-4):
            return text
    return f"{label} {text}"


def format_line(record: dict[str, Any]) -> str:
    """The one-line summary of a finding given as a dict (as stored in ``metrics.json``)."""
    metric = record.get("metric", "accuracy")
    verdict = "held" if record["held"] else "NOT held"
    return (f"{record.get('claim') or record['name']}: {labelled_value(record['label_a'], record['value_a'], metric)}"
            f" vs {labelled_value(record['label_b'], record['value_b'], metric)}, difference "
            f"{_format_difference(record['difference'], metric)} (95% interval "
            f"{_format_difference(record['ci_low'], metric)} to {_format_difference(record['ci_high'], metric)},"
            f" {record.get('groups', '?')} {record.get('part', 'test')} groups): {verdict}")


def strict() -> bool:
    """True when ``COURSE_STRICT_FINDINGS`` is set to ``1`` (or ``true``/``yes``)."""
    return os.environ.get(STRICT_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def _group_codes(groups: Sequence[Any], size: int) -> np.ndarray:
    if len(groups) != size:
        raise ValueError(f"groups has {len(groups)} entries for {size} images: give one group per image "
                         "(Sample.group of each test sample, in the same order).")
    _, codes = np.unique(np.asarray([str(group) for group in groups]), return_inverse=True)
    return codes.reshape(-1)


def bootstrap_weights(groups: Sequence[Any], *, resamples: int = _RESAMPLES, seed: int = 0):
    """Yield blocks of image weights, one row per resample: how often each image's group was drawn.

    Drawing ``G`` groups with replacement out of ``G`` gives every group a count; each image inherits the count
    of its group. Deterministic for a given ``seed``.
    """
    codes = _group_codes(groups, len(groups))
    count = int(codes.max()) + 1 if len(codes) else 0
    rng = np.random.default_rng(seed)
    done = 0
    while done < resamples:
        block = min(_CHUNK, resamples - done)
        drawn = rng.integers(0, count, size=(block, count))
        group_counts = np.zeros((block, count))
        np.add.at(group_counts, (np.repeat(np.arange(block), count), drawn.ravel()), 1.0)
        yield group_counts[:, codes]
        done += block


def _as_array(values: Any, name: str) -> np.ndarray:
    array = to_numpy(values).astype(float).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{name} is empty: a finding needs at least one test image.")
    return array


def _interval(samples: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(low), float(high)


def accuracy_interval(correct: Any, groups: Sequence[Any], *, seed: int = 0,
                      resamples: int = _RESAMPLES) -> tuple[float, float, float]:
    """``(accuracy, low, high)``: the share of correct images and its 95% group-bootstrap interval.

    ``correct`` holds one 0/1 (or bool) per test image, ``groups`` their ``Sample.group``.
    """
    correct = _as_array(correct, "correct")
    _group_codes(groups, correct.size)
    resampled = np.concatenate([weights @ correct / weights.sum(axis=1)
                                for weights in bootstrap_weights(groups, resamples=resamples, seed=seed)])
    return (float(correct.mean()), *_interval(resampled))


def print_accuracy(label: str, correct: Any, groups: Sequence[Any], *, seed: int = 0) -> tuple[float, float, float]:
    """Print ``label: 91.7% (95% interval 85.0% to 96.7%, 240 images, 40 groups)``; return the three numbers."""
    accuracy, low, high = accuracy_interval(correct, groups, seed=seed)
    messages.say(f"{label}: {accuracy:.1%} (95% interval {low:.1%} to {high:.1%}, {len(groups)} images, "
                 f"{len(set(map(str, groups)))} groups)")
    return accuracy, low, high


def _reasons(finding: Finding) -> str:
    reasons = []
    if finding.groups < 30:
        reasons.append(f"only {finding.groups} test groups (tracks), so a few signs decide the numbers")
    reasons.append("few training epochs (EPOCHS) may not let the methods show their difference")
    reasons.append("the data may be unlike the course's (another data set, image size or backbone), and the "
                   "verdict may truly differ there")
    return "; ".join(reasons)


def _conclude(finding: Finding, verbose: bool) -> Finding:
    _recorded[finding.name] = finding
    if verbose:
        messages.say(("✅ " if finding.held else "ℹ️ ") + finding.line())
        if not finding.held:
            if finding.difference > finding.margin:
                messages.say("   The difference points the claimed way, but its interval reaches below "
                             f"{_format_difference(finding.margin, finding.metric)}: this data cannot decide it.")
            else:
                messages.say("   The claim did not hold on this run.")
            messages.say(f"   Likely reasons: {_reasons(finding)}. The lesson goes on.")
    if not finding.held and finding.headline and strict():
        raise FindingError(f"{finding.line()} ({STRICT_VARIABLE}=1)")
    return finding


def _finding(name: str, claim: str | None, metric: str, labels: tuple[str, str], values: tuple[float, float],
             resampled: np.ndarray, margin: float, groups: Sequence[Any], headline: bool = True,
             part: str = "test") -> Finding:
    low, high = _interval(resampled)
    difference = values[0] - values[1]
    for value in (*values, difference, low, high):
        if not math.isfinite(value):
            raise ValueError(f"Finding {name!r}: a value is not a number ({values}); are the inputs empty?")
    return Finding(name=name, claim=claim or f"{labels[0]} beats {labels[1]}", metric=metric,
                   label_a=labels[0], label_b=labels[1], value_a=float(values[0]), value_b=float(values[1]),
                   difference=float(difference), ci_low=low, ci_high=high, margin=float(margin),
                   held=bool(low > margin), images=len(groups), groups=len(set(map(str, groups))),
                   headline=bool(headline), part=part)


def compare_accuracy(name: str, correct_a: Any, correct_b: Any, groups: Sequence[Any], *,
                     labels: tuple[str, str] = ("A", "B"), margin: float = 0.0, claim: str | None = None,
                     seed: int = 0, resamples: int = _RESAMPLES, verbose: bool = True,
                     headline: bool = True, part: str = "test") -> Finding:
    """The finding "``labels[0]`` is more accurate than ``labels[1]`` by more than ``margin``".

    ``correct_a`` and ``correct_b`` hold one 0/1 per test image, for the **same** images in the same order;
    ``groups`` their ``Sample.group``. Both accuracies are recomputed on every group-bootstrap resample, so the
    interval of the difference accounts for the pairing (both methods saw the same hard images). ``part`` names
    the images in the finding's line (``"validation"`` for a choice made on validation images).
    """
    a, b = _as_array(correct_a, "correct_a"), _as_array(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(f"Finding {name!r}: {a.size} and {b.size} images; compare both methods on the same "
                         "test images.")
    _group_codes(groups, a.size)
    resampled = np.concatenate([weights @ (a - b) / weights.sum(axis=1)
                                for weights in bootstrap_weights(groups, resamples=resamples, seed=seed)])
    return _conclude(_finding(name, claim, "accuracy", labels, (a.mean(), b.mean()), resampled, margin, groups,
                              headline, part), verbose)


def compare_to_value(name: str, correct: Any, groups: Sequence[Any], value: float, *,
                     labels: tuple[str, str] = ("model", "reference"), below: bool = False,
                     margin: float = 0.0, claim: str | None = None, seed: int = 0,
                     resamples: int = _RESAMPLES, verbose: bool = True, headline: bool = True) -> Finding:
    """The finding "the accuracy of ``correct`` exceeds the fixed ``value`` (e.g. chance) by more than ``margin``".

    With ``below=True`` the claim is the opposite: the accuracy stays below ``value`` by more than ``margin``
    (the finding then reads ``labels[1]`` first). ``labels[1]`` names the fixed value.
    """
    correct = _as_array(correct, "correct")
    fixed = np.full_like(correct, float(value))
    if below:
        return compare_accuracy(name, fixed, correct, groups, labels=(labels[1], labels[0]), margin=margin,
                                claim=claim, seed=seed, resamples=resamples, verbose=verbose, headline=headline)
    return compare_accuracy(name, correct, fixed, groups, labels=labels, margin=margin, claim=claim, seed=seed,
                            resamples=resamples, verbose=verbose, headline=headline)


def compare_independent(name: str, correct_a: Any, groups_a: Sequence[Any], correct_b: Any,
                        groups_b: Sequence[Any], *, labels: tuple[str, str] = ("A", "B"), margin: float = 0.0,
                        claim: str | None = None, seed: int = 0, resamples: int = _RESAMPLES,
                        verbose: bool = True, headline: bool = True) -> Finding:
    """Like :func:`compare_accuracy`, for two shares measured on **different** images (e.g. two splits).

    Each side is resampled by its own groups, independently; with no pairing to lean on, the interval is
    wider than a paired one would be. ``correct_*`` may be any 0/1 flags (e.g. "called unknown").
    """
    a, b = _as_array(correct_a, "correct_a"), _as_array(correct_b, "correct_b")
    _group_codes(groups_a, a.size)
    _group_codes(groups_b, b.size)
    share_a = np.concatenate([w @ a / w.sum(axis=1) for w in bootstrap_weights(groups_a, resamples=resamples,
                                                                              seed=seed)])
    share_b = np.concatenate([w @ b / w.sum(axis=1) for w in bootstrap_weights(groups_b, resamples=resamples,
                                                                              seed=seed + 1)])
    finding = _finding(name, claim, "accuracy", labels, (a.mean(), b.mean()), share_a - share_b, margin,
                       [*map(str, groups_a), *(f"b:{group}" for group in groups_b)], headline)
    return _conclude(finding, verbose)


def _weighted_auroc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of ``scores`` (higher: positive) for each row of image ``weights``; ties count one half."""
    unique, inverse = np.unique(scores, return_inverse=True)
    inverse = inverse.reshape(-1)
    rows = weights.shape[0]
    positive_weight = np.zeros((rows, unique.size))
    negative_weight = np.zeros((rows, unique.size))
    np.add.at(positive_weight.T, inverse[positive], weights[:, positive].T)
    np.add.at(negative_weight.T, inverse[~positive], weights[:, ~positive].T)
    negatives_below = np.cumsum(negative_weight, axis=1) - negative_weight
    pairs = positive_weight.sum(axis=1) * negative_weight.sum(axis=1)
    wins = (positive_weight * (negatives_below + 0.5 * negative_weight)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1), np.nan)


def compare_auroc(name: str, scores_a: Any, scores_b: Any, is_positive: Any, groups: Sequence[Any], *,
                  labels: tuple[str, str] = ("A", "B"), margin: float = 0.0, claim: str | None = None,
                  seed: int = 0, resamples: int = _RESAMPLES, verbose: bool = True,
                  headline: bool = True) -> Finding:
    """The finding "score A separates positives from negatives better than score B" (AUROC, higher is better).

    Both scores are for the same images (higher: more likely positive); ``is_positive`` marks the positives.
    Resamples that draw no positive or no negative image are left out.
    """
    a, b = _as_array(scores_a, "scores_a"), _as_array(scores_b, "scores_b")
    positive = _as_array(is_positive, "is_positive").astype(bool)
    if not a.shape == b.shape == positive.shape:
        raise ValueError(f"Finding {name!r}: give both scores and is_positive for the same images.")
    if positive.all() or not positive.any():
        raise ValueError(f"Finding {name!r}: the AUROC needs both positive and negative images.")
    _group_codes(groups, a.size)
    ones = np.ones((1, a.size))
    values = (float(_weighted_auroc(a, positive, ones)[0]), float(_weighted_auroc(b, positive, ones)[0]))
    differences = np.concatenate([_weighted_auroc(a, positive, w) - _weighted_auroc(b, positive, w)
                                  for w in bootstrap_weights(groups, resamples=resamples, seed=seed)])
    differences = differences[np.isfinite(differences)]
    return _conclude(_finding(name, claim, "AUROC", labels, values, differences, margin, groups, headline),
                     verbose)


def compare_statistic(name: str, statistic: Callable[[np.ndarray], np.ndarray], groups: Sequence[Any], *,
                      labels: tuple[str, str] = ("A", "B"), metric: str = "statistic", margin: float = 0.0,
                      claim: str | None = None, seed: int = 0, resamples: int = _RESAMPLES, verbose: bool = True,
                      headline: bool = True) -> Finding:
    """The finding "``labels[0]``'s value exceeds ``labels[1]``'s by more than ``margin``", for any statistic.

    ``statistic(weights)`` receives image weights, one row per resample (``(rows, images)``, the first call a
    single row of ones: the test images as they are), and returns both methods' values for each row as an
    ``(rows, 2)`` array. Used for statistics that are not a mean over images, such as the expected calibration
    error (:func:`course_utils.calibration.compare_calibration_error`).
    """
    _group_codes(groups, len(groups))
    values = np.asarray(statistic(np.ones((1, len(groups)))), dtype=float).reshape(-1)
    if values.size != 2:
        raise ValueError(f"Finding {name!r}: statistic must return two values per row (both methods).")
    resampled = np.concatenate([np.asarray(statistic(weights), dtype=float)
                                for weights in bootstrap_weights(groups, resamples=resamples, seed=seed)])
    differences = resampled[:, 0] - resampled[:, 1]
    differences = differences[np.isfinite(differences)]
    return _conclude(_finding(name, claim, metric, labels, (values[0], values[1]), differences, margin, groups,
                              headline), verbose)


def auroc_interval(scores: Any, is_positive: Any, groups: Sequence[Any], *, seed: int = 0,
                   resamples: int = _RESAMPLES) -> tuple[float, float, float]:
    """``(auroc, low, high)``: the AUROC of ``scores`` (higher: positive) and its 95% group-bootstrap interval."""
    values = _as_array(scores, "scores")
    positive = _as_array(is_positive, "is_positive").astype(bool)
    _group_codes(groups, values.size)
    auroc = float(_weighted_auroc(values, positive, np.ones((1, values.size)))[0])
    resampled = np.concatenate([_weighted_auroc(values, positive, w)
                                for w in bootstrap_weights(groups, resamples=resamples, seed=seed)])
    return (auroc, *_interval(resampled[np.isfinite(resampled)]))


def _image_key(sample: Any) -> str:
    return f"{sample.group}|{Path(sample.path).name}"


def save_outcomes(output_dir: str | os.PathLike[str], samples: Sequence[Any], correct: Any) -> Path:
    """Write which test images a model got right (``test_outcomes.json``), so a later lesson can pair them."""
    from course_utils.files import write_json_atomic

    flags = _as_array(correct, "correct")
    if flags.size != len(samples):
        raise ValueError(f"{flags.size} results for {len(samples)} test samples: give one per sample.")
    return write_json_atomic(Path(output_dir) / OUTCOMES_FILE,
                             {"images": [_image_key(sample) for sample in samples],
                              "correct": [int(flag) for flag in flags]})


def load_outcomes(output_dir: str | os.PathLike[str], samples: Sequence[Any]) -> np.ndarray | None:
    """The 0/1 results saved by :func:`save_outcomes` for exactly these ``samples``, else None (missing file,
    or other test images: then the comparison must be computed afresh)."""
    path = Path(output_dir) / OUTCOMES_FILE
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if saved.get("images") != [_image_key(sample) for sample in samples]:
        return None
    return np.asarray(saved["correct"], dtype=float)


def expect(condition: bool, claim: str, detail: str = "") -> bool:
    """A single-example demonstration the prose relies on (e.g. "the drawn stop sign is called stop").

    It has no interval and is not recorded: it prints a notice when it does not hold, and the lesson goes on
    (with ``COURSE_STRICT_FINDINGS=1`` it raises :class:`FindingError`). Returns ``condition``.
    """
    if not condition:
        messages.say(
            f"ℹ️ Not on this run: {claim}{f' ({detail})' if detail else ''}. The text below describes the "
            "course's reference data; on other data, few epochs or another backbone it can come out otherwise.")
        if strict():
            raise FindingError(f"{claim}: NOT held{f' ({detail})' if detail else ''} ({STRICT_VARIABLE}=1)")
    return bool(condition)


def records() -> list[dict[str, Any]]:
    """Every finding made so far in this session (the latest per name), as dicts for ``metrics.json``."""
    return [finding.as_dict() for finding in _recorded.values()]


def clear() -> None:
    """Forget the recorded findings (tests; a notebook starts with none)."""
    _recorded.clear()
