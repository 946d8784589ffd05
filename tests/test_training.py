"""The training engine on a tiny synthetic problem: 2-D points, two classes split by a line."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from course_utils.checkpoints import load_checkpoint
from course_utils.training import HISTORY_COLUMNS, evaluate_loss_accuracy, fit, train_one_epoch, use_fused_optimizer


def points(n: int, seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 2, generator=generator)
    labels = (inputs[:, 0] + 0.5 * inputs[:, 1] > 0).long()
    return TensorDataset(inputs, labels)


class NoisyPoints(Dataset):
    """Points with numpy and ``random`` noise added on every access, like a random augmentation."""

    def __init__(self, base: TensorDataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        inputs, label = self.base[index]
        noise = torch.tensor([np.random.normal(0, 0.05), random.gauss(0, 0.05)], dtype=torch.float32)
        return inputs + noise, label


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))


def loaders(seed: int = 0, train_size: int = 70, batch_size: int = 16):
    train = DataLoader(NoisyPoints(points(train_size, 1)), batch_size=batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    val = DataLoader(points(40, 2), batch_size=batch_size)
    return train, val


class WeightRecorder:
    """A stand-in scheduler: fit calls ``step()`` once per epoch, so it records the weights of each epoch.

    From ``worsen_after`` on it flips the learning rate's sign (gradient ascent), so the validation
    accuracy peaks early and the best epoch is not the last one.
    """

    def __init__(self, model: nn.Module, optimizer, worsen_after: int | None = None) -> None:
        self.model, self.optimizer, self.worsen_after = model, optimizer, worsen_after
        self.snapshots: list[dict[str, torch.Tensor]] = []

    def state_dict(self) -> dict:  # saved in fit's checkpoints like a scheduler's
        return {"snapshots": len(self.snapshots)}

    def load_state_dict(self, state: dict) -> None:
        pass

    def step(self) -> None:
        self.snapshots.append({k: v.clone() for k, v in self.model.state_dict().items()})
        if self.worsen_after is not None and len(self.snapshots) == self.worsen_after:
            for group in self.optimizer.param_groups:
                group["lr"] = -4 * abs(group["lr"])


def test_loss_goes_down_and_history_has_the_documented_columns():
    model = tiny_model()
    train, val = loaders()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    history = fit(model, train, val, epochs=8, optimizer=optimizer, verbose=False)
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == list(range(1, 9))
    assert history["train_loss"].iloc[-1] < 0.5 * history["train_loss"].iloc[0]
    assert history["val_accuracy"].max() >= 0.9
    assert (history["learning_rate"] == 0.3).all()
    assert (history["seconds"] > 0).all()


def test_best_weights_are_restored_when_validation_accuracy_peaks_early():
    model = tiny_model()
    train, val = loaders()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    recorder = WeightRecorder(model, optimizer, worsen_after=4)
    history = fit(model, train, val, epochs=9, optimizer=optimizer, scheduler=recorder, verbose=False)
    ranked = history.sort_values(["val_accuracy", "val_loss"], ascending=[False, True])
    best_epoch = int(ranked["epoch"].iloc[0])
    assert history.attrs["best_epoch"] == best_epoch
    assert best_epoch <= 5 and history["val_accuracy"].iloc[-1] < history["val_accuracy"].max()
    for key, value in model.state_dict().items():
        assert torch.equal(value, recorder.snapshots[best_epoch - 1][key]), key
    _, accuracy = evaluate_loss_accuracy(model, val, nn.CrossEntropyLoss())
    assert accuracy == pytest.approx(history["val_accuracy"].max())


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    model = tiny_model()
    train, val = loaders()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    recorder = WeightRecorder(model, optimizer, worsen_after=4)
    history = fit(model, train, val, epochs=30, optimizer=optimizer, scheduler=recorder,
                  early_stopping_patience=2, verbose=False)
    assert len(history) == history.attrs["best_epoch"] + 2 < 30


def test_an_early_stopped_run_resumed_trains_no_more_and_says_the_stop_once(tmp_path, capsys):
    # one rule for early stopping, applied after each epoch and to a resumed history alike
    path = tmp_path / "last.pt"

    def stopping_run(resume: bool):
        model = tiny_model()
        train, val = loaders()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
        recorder = WeightRecorder(model, optimizer, worsen_after=4)
        return fit(model, train, val, epochs=30, optimizer=optimizer, scheduler=recorder, early_stopping_patience=2,
                   checkpoint_path=path, resume=resume, verbose=True)

    first = stopping_run(resume=False)
    out = capsys.readouterr().out
    assert out.count("Early stopping after epoch") == 1 and f"after epoch {len(first)}:" in out
    again = stopping_run(resume=True)
    assert again.equals(first)  # nothing trained: the patience had run out before the interruption
    assert "Early stopping" not in capsys.readouterr().out


class FixedLogits(nn.Module):
    """A 'model' that returns the logits stored for each example (its input is the example's index)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits.clone())

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.logits[index]


def test_loss_and_accuracy_are_averaged_over_examples_not_batches():
    # 5 examples in batches of 4 and 1: the first 4 are right, the last one is wrong.
    logits = torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 0.5], [4.0, 0.0]])
    targets = torch.tensor([0, 1, 0, 1, 1])
    loader = DataLoader(TensorDataset(torch.arange(5), targets), batch_size=4)
    model = FixedLogits(logits)
    loss, accuracy = evaluate_loss_accuracy(model, loader, nn.CrossEntropyLoss())
    assert accuracy == pytest.approx(4 / 5)  # averaging the two batches would give (1 + 0) / 2
    assert loss == pytest.approx(F.cross_entropy(logits, targets).item(), rel=1e-6)
    # Training with a zero learning rate leaves the logits as they are: same figures from the train pass.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    train_loss, train_accuracy = train_one_epoch(model, loader, optimizer, nn.CrossEntropyLoss())
    assert (train_loss, train_accuracy) == pytest.approx((loss, accuracy), rel=1e-6)
    history = fit(model, loader, loader, epochs=1, optimizer=optimizer, verbose=False)
    assert history["train_accuracy"].iloc[0] == pytest.approx(0.8)
    assert history["val_loss"].iloc[0] == pytest.approx(loss, rel=1e-6)


def run(epochs: int, checkpoint_path=None, resume: bool = False):
    """Build everything from seed 0, as a notebook re-run after an interruption would."""
    random.seed(0)
    np.random.seed(0)
    model = tiny_model(0)
    train, val = loaders(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    history = fit(model, train, val, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
                  checkpoint_path=checkpoint_path, resume=resume, verbose=False,
                  checkpoint_metadata={"arch": "tiny", "classes": ["left", "right"], "note": "kept"})
    return history.drop(columns="seconds"), model


def test_resume_reproduces_the_uninterrupted_history(tmp_path):
    uninterrupted, full_model = run(6)
    path = tmp_path / "last.pt"
    first_part, _ = run(3, checkpoint_path=path)
    assert first_part.equals(uninterrupted.iloc[:3])
    torch.manual_seed(123)  # a different global state before resuming must not matter
    resumed, resumed_model = run(6, checkpoint_path=path, resume=True)
    assert resumed.equals(uninterrupted)
    for key, value in full_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key])
    metadata = load_checkpoint(path)  # the per-epoch file is an ordinary, weights-only checkpoint
    assert metadata["arch"] == "tiny" and metadata["classes"] == ["left", "right"]
    assert metadata["epoch"] == 6 and metadata["extra"]["note"] == "kept"
    # Resuming a finished run trains nothing more and returns the same history.
    again, _ = run(6, checkpoint_path=path, resume=True)
    assert again.equals(uninterrupted)


def test_resume_without_a_checkpoint_starts_from_scratch(tmp_path):
    history, _ = run(2, checkpoint_path=tmp_path / "missing" / "last.pt", resume=True)
    assert history["epoch"].tolist() == [1, 2]
    assert (tmp_path / "missing" / "last.pt").is_file()


def trained_with(optimizer_class, seed: int = 0, **implementation):
    """Three epochs of fit from seed 0 with ``optimizer_class(..., **implementation)``; the ops it ran."""
    random.seed(seed)
    np.random.seed(seed)
    model = tiny_model(seed)
    train, val = loaders(seed)
    optimizer = optimizer_class(model.parameters(), lr=0.05, **implementation)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        history = fit(model, train, val, epochs=3, optimizer=optimizer, verbose=False)
    operations = {event.key for event in profile.key_averages()}
    return history.drop(columns="seconds"), model, optimizer, operations


@pytest.mark.parametrize(("optimizer_class", "fused_kernel"), [
    (torch.optim.AdamW, "aten::_fused_adamw_"), (torch.optim.Adam, "aten::_fused_adam_"),
    (torch.optim.SGD, "aten::_fused_sgd_")])
def test_a_default_cpu_optimizer_steps_fused_and_trains_as_the_loop_does(optimizer_class, fused_kernel):
    fused, fused_model, optimizer, operations = trained_with(optimizer_class)
    assert fused_kernel in operations
    assert all(group["fused"] for group in optimizer.param_groups)
    # foreach=False is the loop PyTorch runs by default on the CPU; chosen explicitly, fit leaves it alone
    looped, looped_model, loop_optimizer, loop_operations = trained_with(optimizer_class, foreach=False)
    assert fused_kernel not in loop_operations
    assert all(group["fused"] is None for group in loop_optimizer.param_groups)
    pd.testing.assert_frame_equal(fused, looped, check_exact=False, rtol=1e-4, atol=1e-5)
    for key, value in fused_model.state_dict().items():
        torch.testing.assert_close(value, looped_model.state_dict()[key], rtol=1e-4, atol=1e-5)


def test_an_optimizer_whose_implementation_was_chosen_or_that_has_no_fused_form_is_left_alone():
    weights = nn.Parameter(torch.zeros(3))
    assert not use_fused_optimizer(torch.optim.SGD([weights], lr=0.1, fused=False))
    assert not use_fused_optimizer(torch.optim.Adam([weights], foreach=True))
    assert not use_fused_optimizer(torch.optim.RMSprop([weights]))
    assert use_fused_optimizer(torch.optim.AdamW([weights], fused=True))  # already fused: stays so
    optimizer = torch.optim.AdamW([weights])
    assert use_fused_optimizer(optimizer)
    optimizer.add_param_group({"params": [nn.Parameter(torch.zeros(2))], "lr": 0.01})
    assert optimizer.param_groups[1]["fused"] is True  # a group added afterwards is fused too


def test_frozen_batchnorm_keeps_its_running_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    model[1].running_mean.fill_(0.25)
    for parameter in list(model[0].parameters()) + list(model[1].parameters()):
        parameter.requires_grad_(False)
    train, val = loaders()
    trainable = [p for p in model.parameters() if p.requires_grad]
    fit(model, train, val, epochs=2, optimizer=torch.optim.SGD(trainable, lr=0.1), verbose=False)
    assert torch.all(model[1].running_mean == 0.25)


def test_one_progress_bar_per_run_with_the_metrics_beside_it(capsys):
    model = tiny_model()
    train, val = loaders()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3)
    history = fit(model, train, val, epochs=6, optimizer=optimizer)
    shown = capsys.readouterr().err
    lines = [line for line in shown.replace("\r", "\n").splitlines() if line.strip()]
    assert all(line.startswith("epochs:") for line in lines)  # no bar per epoch ("epoch 1/6")
    assert 1 <= len(lines) <= 3  # a text bar (logs, stored outputs) redraws a few times per run, not per batch
    last = lines[-1]
    assert "6/6" in last
    assert f"val_acc={history['val_accuracy'].iloc[-1]:.3f}" in last and "val_loss=" in last


def test_the_training_step_reference_updates_and_returns_a_number():
    from course_utils.checks import check_training_step
    from course_utils.training import train_step

    check_training_step(train_step)  # raises ExerciseError if the package's own answer were wrong


def test_first_epoch_continues_a_count_begun_elsewhere(capsys):
    model = tiny_model()
    train, val = loaders()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    recorder = WeightRecorder(model, optimizer, worsen_after=2)
    history = fit(model, train, val, epochs=5, optimizer=optimizer, scheduler=recorder, first_epoch=3)
    assert history["epoch"].tolist() == [3, 4, 5, 6, 7]
    best_epoch = history.attrs["best_epoch"]
    assert best_epoch == int(history.loc[history["val_accuracy"].idxmax(), "epoch"])
    if best_epoch != 7:  # the message names the epoch as the history does
        assert f"Restored the best weights: epoch {best_epoch}," in capsys.readouterr().out
    for key, value in model.state_dict().items():  # snapshot 0 holds the weights after epoch 3
        assert torch.equal(value, recorder.snapshots[best_epoch - 3][key]), key
    with pytest.raises(ValueError, match="first_epoch"):
        fit(model, train, val, epochs=1, optimizer=optimizer, first_epoch=0)


def batchnorm_model(seed: int = 0) -> nn.Module:
    """Every layer trainable, BatchNorm included: a fully unfrozen model."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def batchnorm_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: buffer.clone() for name, buffer in model.named_buffers()}


@pytest.mark.parametrize("batchnorm", ["frozen", "train"])
def test_batchnorm_frozen_keeps_the_statistics_of_an_unfrozen_model_and_train_updates_them(batchnorm):
    model = batchnorm_model()
    before = batchnorm_buffers(model)
    affine_before = model[1].weight.detach().clone()
    train, val = loaders()
    fit(model, train, val, epochs=1, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), verbose=False,
        batchnorm=batchnorm)
    after = batchnorm_buffers(model)
    assert set(after) == {"1.running_mean", "1.running_var", "1.num_batches_tracked"}
    if batchnorm == "frozen":  # bit-identical: the layer normalised with its stored statistics all epoch
        assert all(torch.equal(before[name], after[name]) for name in before)
    else:
        assert not torch.equal(before["1.running_mean"], after["1.running_mean"])
        assert not torch.equal(before["1.running_var"], after["1.running_var"])
    assert not torch.equal(affine_before, model[1].weight)  # the scale still learns in both modes


def test_the_default_batchnorm_mode_is_todays_training_mode():
    def history_and_state(**options):
        random.seed(0)
        np.random.seed(0)
        model = batchnorm_model()
        train, val = loaders()
        history = fit(model, train, val, epochs=2, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                      verbose=False, **options)
        return history.drop(columns="seconds"), model.state_dict()

    default, default_state = history_and_state()
    explicit, explicit_state = history_and_state(batchnorm="train")
    frozen, _ = history_and_state(batchnorm="frozen")
    assert default.equals(explicit)
    assert all(torch.equal(value, explicit_state[key]) for key, value in default_state.items())
    assert not default.equals(frozen)  # the mode does change training


def test_a_batchnorm_mode_or_scheduler_step_that_does_not_exist_is_one_clear_error():
    model = batchnorm_model()
    train, val = loaders()
    with pytest.raises(ValueError, match="batchnorm='inference' is not a BatchNorm mode"):
        fit(model, train, val, epochs=1, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), verbose=False,
            batchnorm="inference")
    with pytest.raises(ValueError, match="scheduler_step"):
        fit(model, train, val, epochs=1, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), verbose=False,
            scheduler_step="step")


def test_a_scheduler_stepped_per_batch_moves_the_rate_every_batch():
    model = tiny_model()
    train, val = loaders(train_size=64, batch_size=16)  # 4 batches per epoch
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 ** step)
    history = fit(model, train, val, epochs=3, optimizer=optimizer, scheduler=scheduler, scheduler_step="batch",
                  verbose=False)
    assert history["learning_rate"].tolist() == pytest.approx([1.0, 0.5 ** 4, 0.5 ** 8])
