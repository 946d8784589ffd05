"""Lesson 3's self-checks: unfreezing, two learning rates, predicting one image.

Students call them as ``checks.check_...`` (:mod:`course_utils.checks`); what they share is in
:mod:`course_utils.checks_common`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from course_utils.checks_common import (
    _call_answer,
    _count,
    _expect_module,
    _fail,
    _passed,
    _split_parameters,
    _type_name,
)
from course_utils.models import body_blocks

__all__ = ["check_optimizer_groups", "check_prediction_function", "check_unfrozen_last_blocks"]


def check_unfrozen_last_blocks(model: nn.Module, n: int) -> None:
    """Check that exactly the last ``n`` body blocks and the head are trainable, earlier blocks frozen."""
    _expect_module(model, "The model")
    blocks = body_blocks(model)
    head, _ = _split_parameters(model)
    if not any(p.requires_grad for p in head):
        _fail("The head is frozen: it must always train. Set requires_grad = True on its parameters.")
    first_trainable = max(len(blocks) - n, 0)
    earlier = blocks[:first_trainable]
    training_earlier = [index for index, block in enumerate(earlier)
                        if any(p.requires_grad for p in block.parameters())]
    if training_earlier and all(p.requires_grad for block in earlier for p in block.parameters()):
        count = _count([p for block in earlier for p in block.parameters()])
        _fail(f"Blocks 1 to {first_trainable} of {len(blocks)} still train ({count:,} parameters), but only the "
              f"last {n} should. They were never frozen: a loaded or copied model starts with every parameter "
              f"trainable, so set requires_grad = False on all parameters first, then switch on the last {n} "
              "blocks and the head.")
    if training_earlier:
        index = training_earlier[0]
        trainable = [p for p in earlier[index].parameters() if p.requires_grad]
        _fail(f"Block {index + 1} of {len(blocks)} trains too ({_count(trainable):,} parameters), but only the "
              f"last {n} should: set requires_grad = False on its parameters (models.body_blocks lists the "
              "blocks from input to output, so the last ones are at the end of the list).")
    for index, block in enumerate(blocks[first_trainable:], start=first_trainable):
        parameters = list(block.parameters())
        trainable = [p for p in parameters if p.requires_grad]
        if len(trainable) < len(parameters):
            state = "is still frozen" if not trainable else "is only partly unfrozen"
            _fail(f"Block {index + 1} of {len(blocks)} {state}, but the last {n} blocks should train: set "
                  "requires_grad = True on all of their parameters.")
    trainable_total = _count([p for p in model.parameters() if p.requires_grad])
    _passed(f"The head and the last {n} of {len(blocks)} body blocks train ({trainable_total:,} parameters); "
            "earlier blocks stay frozen.")


def check_optimizer_groups(optimizer: torch.optim.Optimizer, model: nn.Module, *,
                           learning_rates: tuple[float, float] | None = None) -> None:
    """Check an optimizer for fine-tuning: only trainable parameters, head and trainable body in their groups.

    The two learning rates are the student's measured choice (lesson 3 compares them), so any pair passes,
    unless the exercise asks for given rates: ``learning_rates=(head rate, body rate)`` (lesson 5).

    A parameter in two groups never reaches this check: PyTorch refuses it when the optimizer is built.
    In IPython that error is shown as one line too (see :func:`_show_library_errors_briefly`).
    """
    _expect_module(model, "The model")
    asked = learning_rates
    if not isinstance(optimizer, torch.optim.Optimizer):
        if isinstance(optimizer, (list, tuple)) and optimizer and all(isinstance(g, dict) for g in optimizer):
            _fail("optimizer is a list of parameter groups, not an optimizer: hand the groups to an optimizer "
                  "class (torch.optim.AdamW), which then updates their parameters.")
        _fail(f"optimizer is a {_type_name(optimizer)}, not a PyTorch optimizer: build one from a torch.optim "
              "class (torch.optim.AdamW) and the parameter groups.")
    head, body = _split_parameters(model)
    learning_rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    own = {id(p) for p in model.parameters()}
    foreign = [rate for key, rate in learning_rates.items() if key not in own]
    if foreign:
        _fail(f"The optimizer holds {len(foreign)} parameter tensors that are not this model's: it was built "
              "from another model, or from a copy of it. Build it from the parameters of the model passed here.")
    frozen = [p for p in model.parameters() if not p.requires_grad and id(p) in learning_rates]
    if frozen:
        _fail(f"The optimizer holds {len(frozen)} frozen parameter tensors ({_count(frozen):,} numbers). "
              "They get no gradient, so the optimizer skips them today, but unfrozen later they would train "
              "at their group's learning rate without anyone choosing it. Pass only the trainable ones "
              "(requires_grad True).")
    missing_head = [p for p in head if p.requires_grad and id(p) not in learning_rates]
    if missing_head:
        _fail(f"{len(missing_head)} of the head's parameter tensors are not in the optimizer, so the head "
              "would not learn: give the optimizer the head's parameters.")
    trainable_body = [p for p in body if p.requires_grad]
    missing_body = [p for p in trainable_body if id(p) not in learning_rates]
    if missing_body:
        _fail(f"{len(missing_body)} trainable body parameter tensors are not in the optimizer: they get "
              "gradients but never change. Add them in a group with a smaller learning rate.")
    if not any(p.requires_grad for p in head):
        _fail("The head is frozen, so the optimizer has nothing new to learn: set requires_grad = True "
              "on it.")
    if trainable_body:
        head_lr = min(learning_rates[id(p)] for p in head if p.requires_grad)
        body_lr = max(learning_rates[id(p)] for p in trainable_body)
        if asked is not None:
            head_rates = {learning_rates[id(p)] for p in head if p.requires_grad}
            body_rates = {learning_rates[id(p)] for p in trainable_body}
            if head_rates != {asked[0]} or body_rates != {asked[1]}:
                _fail(f"The exercise asks for the head at lr={asked[0]:g} and the body at lr={asked[1]:g}; this "
                      f"optimizer has the head at {', '.join(f'{r:g}' for r in sorted(head_rates))} and the body "
                      f"at {', '.join(f'{r:g}' for r in sorted(body_rates))}. Give each group its own rate.")
        _passed(f"Optimizer ready: head at lr={head_lr:g}, body at lr={body_lr:g}, no frozen parameters.")
    else:
        _passed("Optimizer ready: it trains the head and holds no frozen parameters.")


def check_prediction_function(predict_function: Callable[..., Any], model: nn.Module, path: Any,
                              transform: Callable, classes: Sequence[str]) -> None:
    """Check ``predict_function(model, path, transform, classes)``: class probabilities of one image file.

    The function gets a copy of ``model`` in training mode, as a model is right after training. It must
    switch it to eval mode (``model.eval()``): in training mode BatchNorm normalises with the statistics of
    this one image and overwrites its running statistics, and dropout drops features at random. The answer
    is compared with :func:`course_utils.evaluation.predict_image`.
    """
    import pandas as pd

    from course_utils.evaluation import predict_image

    _expect_module(model, "The model")
    trial = copy.deepcopy(model).train()
    buffers = {name: buffer.detach().clone() for name, buffer in trial.named_buffers()
               if buffer.is_floating_point()}
    answer = _call_answer(predict_function, trial, path, transform, classes)
    changed = [name for name, buffer in trial.named_buffers()
               if name in buffers and not torch.equal(buffer.detach(), buffers[name])]
    if changed:
        _fail(f"Predicting changed the model: {len(changed)} BatchNorm statistics (e.g. {changed[0]}) moved "
              "towards this one image. Call model.eval() before the forward pass: in training mode BatchNorm "
              "uses and updates batch statistics, and dropout drops features at random.")
    if answer is None:
        _fail("The function returns None: did you forget `return`?")
    if not isinstance(answer, pd.Series):
        _fail(f"The function returns a {_type_name(answer)}; return a pandas Series of the probabilities indexed "
              "by the class names, so that each probability carries its class's name.")
    expected = predict_image(model, path, transform, classes)
    index = [str(name) for name in answer.index]
    if sorted(index) != sorted(expected.index):
        _fail(f"The Series is indexed by {index[:4]}, not by the class names {list(classes)[:4]}: give it "
              "index=classes.")
    try:
        values = answer.to_numpy(dtype=float)
    except (TypeError, ValueError):
        _fail(f"The Series holds {answer.dtype} values, not numbers: put the probabilities in as a NumPy array.")
    if values.min() < 0 or values.max() > 1 or not math.isclose(values.sum(), 1, abs_tol=1e-3):
        _fail("The values are not probabilities (each in [0, 1], summing to 1): apply a softmax over the class "
              "dimension (dim=-1, the last one) to the model's output.")
    if index != list(expected.index):
        _fail("Sort the probabilities from highest to lowest: .sort_values(ascending=False).")
    if not np.allclose(values, expected.to_numpy(), atol=1e-3):
        _fail("The probabilities differ from evaluation.predict_image's for the same image: use the "
              "evaluation transform and the model in eval mode.")
    _passed(f"Eval mode, softmax over {len(index)} classes, highest first: the same as "
            "evaluation.predict_image.")
