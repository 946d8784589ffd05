"""Tests of course_utils.devices: the model's device and evaluation mode that is always undone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_utils.devices import batch_to_device, evaluating, model_device
from course_utils.evaluation import predict


class _Interrupting(nn.Module):
    """A model whose forward pass is interrupted, as Ctrl+C in a notebook would."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        raise KeyboardInterrupt


def test_evaluating_switches_to_eval_without_gradients_and_restores_the_mode():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
    with evaluating(model):
        assert not model.training and not model[1].training
        assert not model(torch.ones(1, 2)).requires_grad
    assert model.training and model[1].training
    model.eval()
    with evaluating(model):
        pass
    assert not model.training  # a model that was in eval mode stays there


def test_ctrl_c_inside_predict_leaves_a_training_model_in_training_mode():
    model = _Interrupting().train()
    with pytest.raises(KeyboardInterrupt):
        predict(model, [(torch.ones(3, 2), torch.zeros(3, dtype=torch.long))])
    assert model.training


def test_model_device_and_batches_on_the_cpu():
    assert model_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(nn.ReLU()) == torch.device("cpu")  # no parameters: the CPU
    batch = batch_to_device(torch.ones(2, 3, 4, 4), "cpu")
    assert batch.device == torch.device("cpu") and batch.shape == (2, 3, 4, 4)
