"""training.read_history: the printed reading of a training history (still improving, overfitting, levelled off)."""

from __future__ import annotations

import pandas as pd
import pytest

from course_utils import training


def history(train_loss, val_loss, val_accuracy, first_epoch=1):
    """A history table like fit's, one row per epoch."""
    return pd.DataFrame({"epoch": range(first_epoch, first_epoch + len(val_loss)), "train_loss": train_loss,
                         "train_accuracy": float("nan"), "val_loss": val_loss, "val_accuracy": val_accuracy})


def test_best_epoch_at_the_end_reads_still_improving():
    reading = training.read_history(history([1.0, 0.8, 0.6, 0.5], [1.1, 0.9, 0.95, 0.7], [0.5, 0.6, 0.6, 0.7]))
    assert reading.verdict == "still improving" and (reading.best_epoch, reading.last_epoch) == (4, 4)
    assert str(reading).startswith("Still improving: the best validation accuracy (70.0%) came at epoch 4 of 4")


def test_best_epoch_within_the_window_still_reads_improving_and_outside_it_does_not():
    rows = history([1.0, 0.8, 0.6, 0.5], [1.0, 0.7, 0.8, 0.9], [0.5, 0.8, 0.7, 0.7])
    assert training.read_history(rows, window=3).verdict == "still improving"
    assert training.read_history(rows, window=2).verdict == "overfitting"


def test_falling_training_loss_and_rising_validation_loss_after_the_best_reads_overfitting():
    reading = training.read_history(history([1.0, 0.6, 0.4, 0.3, 0.2], [0.9, 0.6, 0.7, 0.8, 1.0],
                                            [0.6, 0.8, 0.75, 0.7, 0.7]))
    assert reading.verdict == "overfitting" and reading.best_epoch == 2
    assert reading.train_loss_since_best == pytest.approx(-0.4) and reading.val_loss_since_best == pytest.approx(0.4)
    assert "0.600 -> 1.000" in reading.sentence


def test_an_early_best_without_rising_validation_loss_reads_levelled_off():
    reading = training.read_history(history([1.0, 0.6, 0.5, 0.5, 0.5], [0.9, 0.6, 0.55, 0.5, 0.5],
                                            [0.6, 0.9, 0.85, 0.85, 0.85]))
    assert reading.verdict == "levelled off" and reading.best_epoch == 2
    assert reading.verdict in training.HISTORY_VERDICTS


def test_ties_in_accuracy_go_to_the_lower_validation_loss_as_in_fit():
    reading = training.read_history(history([1.0, 0.9, 0.8], [0.9, 0.5, 0.7], [0.8, 0.8, 0.8], first_epoch=3))
    assert reading.best_epoch == 4 and reading.last_epoch == 5


@pytest.mark.parametrize(("table", "window", "message"), [
    (pd.DataFrame({"epoch": [1], "val_accuracy": [0.5]}), 2, "no column\\(s\\) train_loss, val_loss"),
    (history([], [], []), 2, "0 epoch\\(s\\)"),
    (history([1.0, float("nan")], [1.0, 1.0], [0.5, 0.5]), 2, "some without a loss"),
    (history([1.0], [1.0], [0.5]), 0, "window=0"),
])
def test_bad_input_is_one_clear_line(table, window, message):
    with pytest.raises(ValueError, match=message) as raised:
        training.read_history(table, window=window)
    assert "\n" not in str(raised.value)
