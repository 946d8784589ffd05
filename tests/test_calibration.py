"""Calibration (issue 20, lesson 4): reliability bins, the expected calibration error, temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_utils import calibration, findings


def sampled_logits(true_logits: np.ndarray, seed: int) -> np.ndarray:
    """Labels drawn from softmax(true_logits): a model that outputs true_logits is calibrated on them."""
    rng = np.random.default_rng(seed)
    probabilities = torch.softmax(torch.from_numpy(true_logits), dim=1).numpy()
    return np.array([rng.choice(len(row), p=row) for row in probabilities])


def logits_and_labels(images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    true_logits = np.random.default_rng(seed).normal(0.0, 2.0, size=(images, 5))
    return true_logits, sampled_logits(true_logits, seed + 1)


def confidence_and_correct(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probabilities = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    return probabilities.max(axis=1), (probabilities.argmax(axis=1) == labels).astype(float)


def test_the_error_is_zero_when_each_bins_accuracy_equals_its_confidence():
    confidences = np.array([0.8] * 10 + [0.5] * 4)
    correct = np.array([1] * 8 + [0] * 2 + [1, 0, 1, 0])
    assert calibration.expected_calibration_error(confidences, correct) == pytest.approx(0.0, abs=1e-12)


def test_the_error_weights_each_bins_gap_by_its_share_of_the_images():
    confidences = np.array([0.95] * 10 + [0.55] * 10)  # two bins
    correct = np.array([1] * 6 + [0] * 4 + [1] * 5 + [0] * 5)  # gaps 0.35 and 0.05
    assert calibration.expected_calibration_error(confidences, correct) == pytest.approx(0.5 * 0.35 + 0.5 * 0.05)


def test_a_large_calibrated_sample_has_almost_no_error_and_an_overconfident_one_has_much():
    logits, labels = logits_and_labels(20_000, seed=0)
    confidences, correct = confidence_and_correct(logits, labels)
    assert calibration.expected_calibration_error(confidences, correct) < 0.015
    confidences, correct = confidence_and_correct(3 * logits, labels)  # same ranking, too sure
    assert calibration.expected_calibration_error(confidences, correct) > 0.1


def test_the_fitted_temperature_softens_an_overconfident_model_and_lowers_its_test_error():
    validation_logits, validation_labels = logits_and_labels(4_000, seed=1)
    test_logits, test_labels = logits_and_labels(4_000, seed=2)
    temperature = calibration.fit_temperature(3 * validation_logits, validation_labels)
    assert 2.5 < temperature < 3.5  # the model multiplied its calibrated logits by 3
    before = calibration.expected_calibration_error(*confidence_and_correct(3 * test_logits, test_labels))
    after = calibration.expected_calibration_error(*confidence_and_correct(3 * test_logits / temperature,
                                                                           test_labels))
    assert after < before / 3


def test_an_underconfident_model_gets_a_temperature_below_one():
    logits, labels = logits_and_labels(4_000, seed=3)
    assert 0.4 < calibration.fit_temperature(logits / 2, labels) < 0.6


def test_temperature_scaling_keeps_every_prediction():
    logits, labels = logits_and_labels(2_000, seed=4)
    temperature = calibration.fit_temperature(3 * logits, labels)
    assert temperature != 1.0
    assert np.array_equal((3 * logits / temperature).argmax(axis=1), (3 * logits).argmax(axis=1))


def test_a_validation_set_without_mistakes_drives_the_temperature_to_the_lower_end():
    logits = np.array([[4.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 5.0]])
    assert calibration.fit_temperature(logits, [0, 1, 2]) == pytest.approx(calibration.TEMPERATURE_RANGE[0])


def test_fit_temperature_takes_tensors_and_rejects_labels_that_do_not_fit():
    logits, labels = logits_and_labels(500, seed=5)
    assert calibration.fit_temperature(torch.from_numpy(logits), torch.from_numpy(labels)) == pytest.approx(
        calibration.fit_temperature(logits, labels))
    with pytest.raises(ValueError, match="one label per image"):
        calibration.fit_temperature(logits, labels[:-1])
    with pytest.raises(ValueError, match="class indices from 0 to 4"):
        calibration.fit_temperature(logits, np.full(500, 5))


def test_reliability_bins_count_each_image_once_in_the_bin_of_its_confidence():
    confidences = np.array([0.0, 1 / 15, 0.5, 0.51, 1.0])
    correct = np.array([0, 1, 1, 0, 1])
    table = calibration.reliability_bins(confidences, correct)
    assert len(table) == calibration.BINS and table["images"].sum() == len(confidences)
    assert table.loc[0, "images"] == 2  # 0 and the edge 1/15 fall in the first bin (edges belong to the left)
    assert table.loc[7, "images"] == 2 and table.loc[7, "accuracy"] == pytest.approx(0.5)
    assert table.loc[7, "confidence"] == pytest.approx(0.505)
    assert table.loc[14, "images"] == 1 and table.loc[14, "high"] == pytest.approx(1.0)
    assert np.isnan(table.loc[3, "accuracy"]) and table.loc[3, "images"] == 0


def test_bad_confidences_get_one_clear_error():
    with pytest.raises(ValueError, match="softmax probabilities, not logits"):
        calibration.expected_calibration_error([2.3, -1.0], [1, 0])
    with pytest.raises(ValueError, match="3 confidences and 2 correct flags"):
        calibration.reliability_bins([0.5, 0.6, 0.7], [1, 0])


def test_weights_count_an_image_that_many_times():
    confidences = np.array([0.9, 0.9, 0.6, 0.3])
    correct = np.array([1, 0, 1, 0])
    weights = np.array([[1, 1, 1, 1], [2, 0, 1, 3]])
    values = calibration.expected_calibration_error(confidences, correct, weights=weights)
    repeated = calibration.expected_calibration_error([0.9, 0.9, 0.6, 0.3, 0.3, 0.3], [1, 1, 1, 0, 0, 0])
    assert values.shape == (2,)
    assert values[0] == pytest.approx(calibration.expected_calibration_error(confidences, correct))
    assert values[1] == pytest.approx(repeated)


def test_the_calibration_finding_holds_when_the_second_confidences_are_better_calibrated():
    findings.clear()
    logits, labels = logits_and_labels(600, seed=6)
    over, correct = confidence_and_correct(3 * logits, labels)
    calibrated, same_correct = confidence_and_correct(logits, labels)
    assert np.array_equal(correct, same_correct)
    groups = [index // 5 for index in range(len(labels))]  # tracks of five images
    finding = calibration.compare_calibration_error("scaling helps", over, calibrated, correct, groups,
                                                    labels=("before", "after"), verbose=False)
    assert finding.held and finding.metric == "ECE" and finding.groups == 120
    assert finding.value_a == pytest.approx(calibration.expected_calibration_error(over, correct))
    assert finding.ci_low <= finding.difference <= finding.ci_high
    assert findings.records()[-1]["name"] == "scaling helps"
    reverse = calibration.compare_calibration_error("scaling hurts", calibrated, over, correct, groups,
                                                    verbose=False, headline=False)
    assert not reverse.held
    findings.clear()
