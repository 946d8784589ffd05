"""Findings: paired group-bootstrap intervals, the verdict, the record for metrics.json and strict mode."""

import numpy as np
import pytest

from course_utils import findings


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv(findings.STRICT_VARIABLE, raising=False)
    findings.clear()
    yield
    findings.clear()


def _tracks(count, frames):
    return [f"sign/{track:03d}" for track in range(count) for _ in range(frames)]


def test_a_clear_win_holds_and_is_recorded(capsys):
    groups = _tracks(40, 5)
    a = np.ones(200)
    b = np.array([1, 0] * 100)
    finding = findings.compare_accuracy("clear", a, b, groups, labels=("good", "coin"), margin=0.05)
    assert finding.held
    assert finding.value_a == 1.0 and finding.value_b == 0.5 and finding.difference == pytest.approx(0.5)
    assert finding.ci_low <= 0.5 <= finding.ci_high and finding.ci_low > 0.05
    assert finding.groups == 40 and finding.images == 200
    line = capsys.readouterr().out
    assert "good 100.0% vs coin 50.0%" in line and "held" in line and "NOT" not in line
    (record,) = findings.records()
    expected = {"name", "held", "difference", "ci_low", "ci_high", "value_a", "value_b", "label_a", "label_b"}
    assert expected <= set(record)
    assert record["held"] is True and record["name"] == "clear"


def test_a_tie_does_not_hold_says_why_and_goes_on(capsys):
    rng = np.random.default_rng(1)
    groups = _tracks(12, 6)
    a = rng.integers(0, 2, 72)
    finding = findings.compare_accuracy("tie", a, a.copy(), groups)
    assert not finding.held and finding.difference == 0
    out = capsys.readouterr().out
    assert "NOT held" in out and "only 12 test groups" in out and "The lesson goes on" in out
    assert findings.records()[0]["held"] is False


def test_the_interval_is_deterministic_for_a_seed():
    rng = np.random.default_rng(2)
    groups = _tracks(20, 3)
    a, b = rng.integers(0, 2, 60), rng.integers(0, 2, 60)
    first = findings.compare_accuracy("x", a, b, groups, seed=3, verbose=False)
    again = findings.compare_accuracy("x", a, b, groups, seed=3, verbose=False)
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    weights = next(findings.bootstrap_weights(groups, seed=3))
    assert np.array_equal(weights, next(findings.bootstrap_weights(groups, seed=3)))
    assert not np.array_equal(weights, next(findings.bootstrap_weights(groups, seed=4)))
    # whole groups: the three frames of a track always carry the same weight
    assert np.array_equal(weights[:, 0::3], weights[:, 1::3]) and (weights.sum(axis=1) == 60).all()
    assert len(findings.records()) == 1  # the same name replaces the earlier record


def test_whole_tracks_give_a_wider_interval_than_single_images():
    # Every frame of a track is right or wrong together: 20 tracks of 10 frames are 20 pieces of evidence.
    rng = np.random.default_rng(0)
    track_right = rng.integers(0, 2, 20)
    a = np.repeat(track_right, 10)
    b = np.repeat(1 - track_right, 10) * rng.integers(0, 2, 200)
    by_track = findings.compare_accuracy("tracks", a, b, _tracks(20, 10), verbose=False)
    by_image = findings.compare_accuracy("images", a, b, [f"image/{i}" for i in range(200)], verbose=False)
    assert by_track.difference == by_image.difference
    assert (by_track.ci_high - by_track.ci_low) > 1.8 * (by_image.ci_high - by_image.ci_low)


def test_strict_mode_raises_on_a_failed_finding(monkeypatch):
    monkeypatch.setenv(findings.STRICT_VARIABLE, "1")
    groups = _tracks(10, 2)
    with pytest.raises(findings.FindingError, match="NOT held"):
        findings.compare_accuracy("fails", np.zeros(20), np.ones(20), groups, verbose=False)
    assert findings.records()[0]["held"] is False  # recorded before raising
    findings.compare_accuracy("holds", np.ones(20), np.zeros(20), groups, verbose=False)  # no error


def test_compare_to_value_above_and_below():
    groups = _tracks(30, 2)
    correct = np.array([1, 1, 1, 0] * 15)
    above = findings.compare_to_value("chance", correct, groups, 0.25, labels=("cnn", "chance"), verbose=False)
    below = findings.compare_to_value("ceiling", correct, groups, 0.99, labels=("cnn", "99%"), below=True,
                                      verbose=False)
    assert above.held and above.difference == pytest.approx(0.5)
    assert below.label_a == "99%" and below.difference == pytest.approx(0.24) and below.held


def test_auroc_finding_matches_the_plain_auroc():
    rng = np.random.default_rng(5)
    positive = np.array([True] * 60 + [False] * 60)
    good = np.where(positive, 1.0, 0.0) + rng.normal(0, 0.3, 120)
    poor = np.where(positive, 1.0, 0.0) + rng.normal(0, 3.0, 120)
    groups = [f"g{i // 3}" for i in range(120)]
    finding = findings.compare_auroc("auroc", good, poor, positive, groups, labels=("good", "poor"), verbose=False)
    from sklearn.metrics import roc_auc_score
    assert finding.value_a == pytest.approx(roc_auc_score(positive, good))
    assert finding.value_b == pytest.approx(roc_auc_score(positive, poor))
    assert finding.held and finding.metric == "AUROC"


def test_accuracy_interval_and_bad_input(capsys):
    groups = _tracks(25, 4)
    correct = np.repeat([1, 1, 1, 0] * 6 + [1], 4)  # 19 of 25 tracks right
    accuracy, low, high = findings.print_accuracy("test accuracy", correct, groups)
    assert accuracy == 0.76 and low < 0.76 < high
    assert "test accuracy: 76.0% (95% interval" in capsys.readouterr().out
    with pytest.raises(ValueError, match="one group per image"):
        findings.accuracy_interval(correct, groups[:-1])
    with pytest.raises(ValueError, match="same test images"):
        findings.compare_accuracy("bad", correct, correct[:-1], groups)


def test_independent_shares_and_auroc_interval():
    seen = np.repeat([1, 1, 1, 0], 10)
    held_out = np.repeat([1, 0, 0, 0], 10)
    finding = findings.compare_independent("caught", seen, _tracks(4, 10), held_out, [f"h{i // 2}" for i in range(40)],
                                           labels=("seen", "held out"), verbose=False)
    assert finding.difference == pytest.approx(0.5) and finding.groups == 24
    positive = np.array([True] * 30 + [False] * 30)
    auroc, low, high = findings.auroc_interval(np.where(positive, 0.9, 0.1), positive, [str(i) for i in range(60)])
    assert auroc == 1.0 and low == 1.0 and high == 1.0


def test_outcomes_round_trip_only_for_the_same_images(tmp_path):
    from course_utils.samples import Sample
    samples = [Sample(tmp_path / f"0000{i}_00000.png", 0, f"stop/0000{i}") for i in range(3)]
    findings.save_outcomes(tmp_path, samples, [1, 0, 1])
    assert findings.load_outcomes(tmp_path, samples).tolist() == [1.0, 0.0, 1.0]
    assert findings.load_outcomes(tmp_path, samples[:2]) is None
    assert findings.load_outcomes(tmp_path / "missing", samples) is None


def test_strict_mode_spares_findings_that_are_not_headline(monkeypatch):
    monkeypatch.setenv(findings.STRICT_VARIABLE, "1")
    groups = _tracks(10, 2)
    finding = findings.compare_accuracy("observation", np.zeros(20), np.ones(20), groups, headline=False,
                                        verbose=False)
    assert not finding.held and findings.records()[0]["headline"] is False


def test_expect_prints_a_notice_and_raises_only_in_strict_mode(capsys, monkeypatch):
    assert findings.expect(True, "fine") is True and capsys.readouterr().out == ""
    assert findings.expect(False, "the stop sign is called stop", "called give_way") is False
    assert "Not on this run: the stop sign is called stop (called give_way)" in capsys.readouterr().out
    monkeypatch.setenv(findings.STRICT_VARIABLE, "1")
    with pytest.raises(findings.FindingError, match="called give_way"):
        findings.expect(False, "the stop sign is called stop", "called give_way")


def test_compare_statistic_of_weighted_means_reproduces_the_accuracy_finding():
    rng = np.random.default_rng(3)
    a, b = (rng.random(60) < 0.8).astype(float), (rng.random(60) < 0.6).astype(float)
    groups = _tracks(12, 5)
    accuracy = findings.compare_accuracy("means", a, b, groups, seed=4, verbose=False)

    def weighted_means(weights):
        return np.stack([weights @ a / weights.sum(axis=1), weights @ b / weights.sum(axis=1)], axis=1)

    finding = findings.compare_statistic("statistic", weighted_means, groups, metric="accuracy", seed=4,
                                         verbose=False)
    assert (finding.value_a, finding.value_b) == pytest.approx((a.mean(), b.mean()))
    assert (finding.ci_low, finding.ci_high, finding.held) == pytest.approx(
        (accuracy.ci_low, accuracy.ci_high, accuracy.held))
    assert findings.records()[-1]["name"] == "statistic"
    with pytest.raises(ValueError, match="two values per row"):
        findings.compare_statistic("bad", lambda weights: weights @ a[:, None], groups, verbose=False)


def test_a_label_that_states_its_own_value_is_not_printed_twice(capsys):
    assert findings.labelled_value("90%", 0.9) == "90.0%"
    assert findings.labelled_value("0.5", 0.5, "AUROC") == "0.500"
    assert findings.labelled_value("CNN from scratch", 0.664) == "CNN from scratch 66.4%"
    assert findings.labelled_value("80%", 0.9) == "80% 90.0%"  # a label that says something else stays
    groups = _tracks(30, 4)
    findings.compare_to_value("below 90%", np.array([1, 0] * 60), groups, 0.9, labels=("CNN", "90%"), below=True)
    line = capsys.readouterr().out
    assert "90.0% vs CNN 50.0%" in line and "90% 90.0%" not in line


def test_a_finding_on_validation_images_says_so_in_its_line():
    correct_a, correct_b, groups = [1, 1, 1, 0], [1, 0, 0, 0], ["a", "b", "c", "d"]
    on_test = findings.compare_accuracy("t", correct_a, correct_b, groups, verbose=False, headline=False)
    on_validation = findings.compare_accuracy("v", correct_a, correct_b, groups, verbose=False, headline=False,
                                     part="validation")
    assert on_test.line().endswith("4 test groups): NOT held")
    assert on_validation.line().endswith("4 validation groups): NOT held")
    assert on_validation.as_dict()["part"] == "validation"
