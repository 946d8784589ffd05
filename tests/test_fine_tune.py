"""The craft of fine-tuning on tiny images: two stages (head first), BatchNorm mode, and the learning-rate finder."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from course_utils import models, plots, training


def stripes(n: int, seed: int, size: int = 16) -> TensorDataset:
    """Class 0: vertical stripes, class 1: horizontal ones, each at a random phase and with noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    phase = torch.rand(n, 1, generator=generator) * 6.28
    wave = torch.sin(torch.linspace(0, 12, size).view(1, size) + phase)
    vertical = wave.view(n, 1, size).expand(n, size, size)
    images = torch.where(labels.view(n, 1, 1) == 0, vertical, vertical.transpose(1, 2))
    images = images.unsqueeze(1).expand(n, 3, size, size) + 0.3 * torch.randn(n, 3, size, size, generator=generator)
    return TensorDataset(images.contiguous(), labels)


def colours(n: int, seed: int, size: int = 16) -> TensorDataset:
    """Class 0: reddish noise, class 1: bluish noise; even a random body's features separate them."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    tint = torch.tensor([[1.0, 0.0, -1.0], [-1.0, 0.0, 1.0]])[labels].view(n, 3, 1, 1)
    return TensorDataset(tint + torch.randn(n, 3, size, size, generator=generator), labels)


def data(seed: int = 0, kind=stripes):
    train = DataLoader(kind(64, 1), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(seed))
    val = DataLoader(kind(32, 2), batch_size=32)
    return train, val


def small_cnn(seed: int = 0) -> torch.nn.Module:
    """Stands in for a pretrained backbone with a new head: three blocks with BatchNorm, a linear classifier."""
    torch.manual_seed(seed)
    return models.ScratchCNN(2, channels=(4, 8, 8))


def body_parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.named_parameters()
            if not name.startswith("classifier")}


def body_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Weights and BatchNorm buffers of everything but the head, copied."""
    return {name: value.clone() for name, value in model.state_dict().items() if not name.startswith("classifier")}


def same(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


# ------------------------------------------------------------------------------------------------ fine_tune
def test_fine_tune_trains_the_head_first_then_the_body_after_a_warm_up_in_one_history():
    model = small_cnn()
    train, val = data()
    history = training.fine_tune(model, train, val, epochs=3, head_epochs=4, head_lr=0.01, body_lr_factor=1.0,
                                 verbose=False)
    assert list(history.columns) == ["epoch", "stage", *training.HISTORY_COLUMNS[1:]]
    assert history["stage"].tolist() == [1] * 4 + [2] * 3  # stage 1 ran its epochs (no early stop in 4)
    assert history["epoch"].tolist() == list(range(1, 8))  # counted on across the stages
    head_rates, body_rates = history["learning_rate"][:4], history["learning_rate"][4:].to_numpy()
    assert (head_rates == 0.01).all()  # stage 1: a constant rate for the head
    assert body_rates[0] == pytest.approx(0.01 / 5)  # stage 2 starts warming up from a fifth ...
    assert body_rates.max() > 2 * body_rates[0]  # ... rises ...
    assert history.attrs["kept_stage"] == 2 and history.attrs["problem"] is None
    assert history.attrs["best_epoch"] in history["epoch"][history["stage"] == 2].tolist()
    assert all(parameter.requires_grad for parameter in model.parameters())  # the whole body was unfrozen
    assert history.loc[history["stage"] == 2, "val_accuracy"].max() == 1.0  # it learnt the stripes
    assert history.loc[history["stage"] == 1, "val_accuracy"].max() < 0.9  # which the head alone could not


def test_the_body_learns_at_the_head_rate_times_the_factor(monkeypatch):
    peak_rates = {}

    class RecordingOneCycle(torch.optim.lr_scheduler.OneCycleLR):
        def __init__(self, optimizer, max_lr, **options):
            peak_rates.update({group["name"]: rate for group, rate in zip(optimizer.param_groups, max_lr,
                                                                                  strict=True)})
            super().__init__(optimizer, max_lr, **options)

    monkeypatch.setattr(torch.optim.lr_scheduler, "OneCycleLR", RecordingOneCycle)
    train, val = data(kind=colours)
    training.fine_tune(small_cnn(), train, val, epochs=1, head_epochs=0, head_lr=0.01, verbose=False)
    assert peak_rates == pytest.approx({"head": 0.01, "body": 0.001})  # the default factor: 0.1
    initial = body_parameters(small_cnn())
    moved = {}
    for factor in (1e-9, 1.0):
        model = small_cnn()
        history = training.fine_tune(model, train, val, epochs=2, head_epochs=0, head_lr=0.01,
                                     body_lr_factor=factor, batchnorm="train", verbose=False)
        assert history.attrs["kept_stage"] == 2
        moved[factor] = max(float((value - initial[name]).abs().max())
                            for name, value in body_parameters(model).items())
    assert moved[1e-9] < 1e-6 < 1e-3 < moved[1.0]


def test_only_the_last_blocks_unfreeze_when_asked():
    train, val = data(kind=colours)
    model = small_cnn()
    first_block = {name: value.clone() for name, value in model.features[0].state_dict().items()}
    last_block = {name: value.clone() for name, value in model.features[2].state_dict().items()}
    history = training.fine_tune(model, train, val, epochs=2, head_epochs=0, last_blocks=1, head_lr=0.03,
                                 body_lr_factor=1.0, verbose=False)
    assert history.attrs["kept_stage"] == 2
    assert same(first_block, model.features[0].state_dict())  # frozen block: weights and statistics kept
    assert not same(last_block, model.features[2].state_dict())


@pytest.mark.parametrize("batchnorm", ["frozen", "train"])
def test_fine_tune_passes_the_batchnorm_mode_through(batchnorm):
    model = small_cnn()
    buffers = {name: value.clone() for name, value in model.named_buffers()}
    train, val = data()
    history = training.fine_tune(model, train, val, epochs=2, head_epochs=0, head_lr=0.03, body_lr_factor=1.0,
                                 batchnorm=batchnorm, verbose=False)
    assert history.attrs["kept_stage"] == 2
    after = dict(model.named_buffers())
    unchanged = [torch.equal(buffers[name], after[name]) for name in buffers if "running" in name]
    assert all(unchanged) if batchnorm == "frozen" else not any(unchanged)


def test_a_diverging_stage_two_is_reported_in_one_line_and_the_stage_one_model_is_kept(capsys):
    """Stage 1 on cached features; a body rate that blows up; the model goes back to the trained head."""
    model = small_cnn()
    initial_body = body_state(model)
    train, val = data()
    extractor = models.feature_extractor(model).eval()
    with torch.no_grad():
        cached = {part: (extractor(loader.dataset.tensors[0]), loader.dataset.tensors[1])
                  for part, loader in (("train", train), ("val", val))}
    history = training.fine_tune(model, train, val, epochs=2, head_epochs=6, head_lr=0.01, body_lr_factor=1e30,
                                 cached_features=cached, verbose=False)
    notice = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(notice) == 1 and "was not kept" in notice[0] and "non-finite" in notice[0]
    assert not np.isfinite(history.loc[history["stage"] == 2, "train_loss"]).all()
    assert history.attrs["kept_stage"] == 1 and "non-finite at epoch" in history.attrs["problem"]
    stage_one = history[history["stage"] == 1]
    assert history.attrs["best_epoch"] in stage_one["epoch"].tolist()
    # The body is exactly the pretrained one (stage 1 trained on features; stage 2 was undone), frozen again
    assert same(initial_body, body_state(model))
    assert not any(p.requires_grad for name, p in model.named_parameters() if not name.startswith("classifier"))
    # and the kept head gives, on the images, the validation accuracy stage 1 reported on the features
    loss, accuracy = training.evaluate_loss_accuracy(model, val)
    best = stage_one.loc[stage_one["epoch"] == history.attrs["best_epoch"]].iloc[0]
    assert accuracy == best["val_accuracy"] and loss == pytest.approx(best["val_loss"], rel=1e-4)


@pytest.mark.parametrize("keep_better", [True, False])
def test_a_stage_two_that_ends_worse_on_validation_gives_way_to_stage_one(monkeypatch, capsys, keep_better):
    real_fit = training.fit

    def worse_stage_two(*args, **options):  # stage 2 trains as usual, then reports a lower validation accuracy
        history = real_fit(*args, **options)
        if options.get("first_epoch", 1) > 1:
            history["val_accuracy"] = 0.75
        return history

    monkeypatch.setattr(training, "fit", worse_stage_two)
    model = small_cnn()
    initial_body = body_state(model)
    train, val = data(kind=colours)
    extractor = models.feature_extractor(model).eval()
    with torch.no_grad():
        cached = {part: (extractor(loader.dataset.tensors[0]), loader.dataset.tensors[1])
                  for part, loader in (("train", train), ("val", val))}
    history = training.fine_tune(model, train, val, epochs=2, head_epochs=6, head_lr=0.03, body_lr_factor=1.0,
                                 cached_features=cached, keep_better=keep_better, verbose=False)
    assert history.loc[history["stage"] == 1, "val_accuracy"].max() == 1.0
    notice = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    if keep_better:
        assert history.attrs["kept_stage"] == 1 and same(initial_body, body_state(model))
        assert history.attrs["problem"] == "its best validation accuracy, 75.0%, did not beat stage 1's 100.0%"
        assert len(notice) == 1 and "Fine-tuning did not help here" in notice[0]
    else:
        assert history.attrs["kept_stage"] == 2 and not same(initial_body, body_state(model)) and not notice


def test_a_stage_two_stuck_at_chance_or_non_finite_is_a_problem_and_a_learning_one_is_not():
    def stage(val_accuracy, val_loss=0.5):
        return pd.DataFrame({"epoch": [3, 4], "train_loss": [0.7, 0.6], "val_loss": [0.7, val_loss],
                             "val_accuracy": [0.25, val_accuracy]})

    assert training.stage_two_failure(stage(0.9), chance=0.25) is None
    assert "never rose above chance (25.0%" in training.stage_two_failure(stage(0.25), chance=0.25)
    assert "non-finite at epoch 4" in training.stage_two_failure(stage(0.9, val_loss=float("nan")), chance=0.25)
    assert training.chance_level(torch.tensor([0, 1, 1, 1])) == 0.75  # always "1" scores 75%


def test_fine_tune_rejects_bad_settings_in_one_line():
    model = small_cnn()
    train, val = data()
    with pytest.raises(ValueError, match="is not a BatchNorm mode"):
        training.fine_tune(model, train, val, epochs=1, batchnorm="eval", verbose=False)
    with pytest.raises(ValueError, match="cached_features needs the keys 'train' and 'val'"):
        training.fine_tune(model, train, val, epochs=1, cached_features={"train": (None, None)}, verbose=False)
    with pytest.raises(ValueError, match="body_lr_factor must be > 0"):
        training.fine_tune(model, train, val, epochs=1, body_lr_factor=0, verbose=False)


# ---------------------------------------------------------------------------------------- learning-rate finder
def test_the_finder_restores_model_optimizer_and_batchnorm_buffers_bit_for_bit():
    model = small_cnn()
    train, _ = data()
    optimizer = torch.optim.AdamW(models.parameter_groups(model, head_lr=0.01, body_lr=0.001))
    training.train_one_epoch(model, train, optimizer)  # the optimizer now holds moments, the BN layers statistics
    model.features[0].eval()  # a mixed mode, to be restored as it was
    model_before = {name: value.clone() for name, value in model.state_dict().items()}
    optimizer_before = optimizer.state_dict()
    state_before = {key: {name: value.clone() for name, value in state.items()}
                    for key, state in optimizer_before["state"].items()}
    groups_before = [dict(group) for group in optimizer_before["param_groups"]]
    modes_before = [module.training for module in model.modules()]
    gradients_before = [parameter.grad.clone() for parameter in model.parameters()]  # left by the last step
    result = training.find_learning_rate(model, train, optimizer=optimizer, steps=12, verbose=False)
    assert len(result.rates) > 3
    assert same(model_before, model.state_dict())  # weights and every BatchNorm buffer
    assert any("running_mean" in name for name in model_before)
    after = optimizer.state_dict()
    assert after["param_groups"] == groups_before  # learning rates included
    assert after["state"].keys() == state_before.keys()
    assert all(same(state_before[key], after["state"][key]) for key in state_before)
    assert [module.training for module in model.modules()] == modes_before
    assert all(torch.equal(parameter.grad, gradient)
               for parameter, gradient in zip(model.parameters(), gradients_before, strict=True))


def test_training_after_the_finder_is_the_same_as_without_it():
    def history(with_finder: bool) -> pd.DataFrame:
        model = small_cnn()
        train, val = data()
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
        torch.manual_seed(1)
        if with_finder:
            training.find_learning_rate(model, train, optimizer=optimizer, steps=10, verbose=False)
        return training.fit(model, train, val, epochs=2, optimizer=optimizer, verbose=False).drop(columns="seconds")

    assert history(True).equals(history(False))


def test_the_finder_sweeps_exponentially_stops_on_divergence_and_suggests_a_tenth_of_the_minimum():
    model = small_cnn()
    train, _ = data()
    result = training.find_learning_rate(model, train, start_lr=1e-5, end_lr=1e3, steps=80, verbose=False)
    rates = np.asarray(result.rates)
    assert rates[0] == pytest.approx(1e-5)
    assert np.allclose(rates[1:] / rates[:-1], (1e3 / 1e-5) ** (1 / 79))  # one constant factor per step
    assert result.diverged and len(rates) < 80  # the loss blew up before 1e3
    assert result.losses[-1] > 4 * min(result.losses)
    lowest = int(np.argmin(result.losses))
    assert result.suggestion == pytest.approx(rates[lowest] / 10)
    assert result.steepest is not None and result.steepest <= rates[lowest]
    assert 1e-4 < result.suggestion < 1  # the sensible range for AdamW on this small CNN
    assert "suggested learning rate" in str(result)


def test_a_finder_that_diverges_at_once_says_so_in_one_line_and_suggests_nothing(capsys):
    model = small_cnn()
    train, _ = data()
    result = training.find_learning_rate(model, train, start_lr=1e4, end_lr=1e6, steps=20, verbose=False)
    notice = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(notice) == 1 and "found no rate that lowers the loss" in notice[0] and "start_lr" in notice[0]
    assert result.suggestion is None and result.steepest is None and result.diverged
    figure = plots.plot_learning_rate_finder(result)  # the plot copes too
    assert "no suggestion" in figure.axes[0].get_title()
    plt.close(figure)


def test_epochs_for_steps_keeps_the_steps_of_a_short_epoch(capsys):
    assert training.epochs_for_steps(3, 12, 24) == 3 and capsys.readouterr().out == ""  # 36 steps already
    assert training.epochs_for_steps(3, 3, 24) == 8  # 9 steps would be too few: 8 epochs of 3 batches
    assert "8 epochs instead of 3" in capsys.readouterr().out
    assert training.epochs_for_steps(2, 4, 24, verbose=False) == 6 and capsys.readouterr().out == ""
    assert training.epochs_for_steps(1, 5, 0) == 1  # no minimum (the smoke profile)
    with pytest.raises(ValueError, match="batches_per_epoch >= 1"):
        training.epochs_for_steps(2, 0, 24)
