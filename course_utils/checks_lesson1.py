"""Lesson 1's self-checks: padding, blocks, the CNN, the track-aware split, the training step.

Students call them as ``checks.check_...`` (:mod:`course_utils.checks`); what they share is in
:mod:`course_utils.checks_common`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from course_utils.checks_common import (
    _call_answer,
    _expect_module,
    _fail,
    _forward,
    _forward_failed,
    _layers,
    _passed,
    _type_name,
    _was_called,
)

__all__ = ["check_cnn", "check_conv_block", "check_padding", "check_train_siblings", "check_training_step"]


_PADDING_ANSWERS = {(1, 1): 0, (3, 1): 1, (5, 1): 2, (7, 1): 3, (3, 2): 2, (5, 2): 4}


def check_padding(padding_function: Callable[..., Any]) -> None:
    """Check a function ``(kernel_size, dilation=1) -> padding`` that keeps height and width unchanged."""
    takes_dilation = True
    try:
        inspect.signature(padding_function).bind(3, 1)
    except TypeError:
        takes_dilation = False
    except ValueError:  # a built-in without a signature: just try it
        pass
    for (kernel_size, dilation), expected in _PADDING_ANSWERS.items():
        if dilation > 1 and not takes_dilation:
            _fail("Your function takes only the kernel size; give it a second argument `dilation=1` as well "
                  "(a dilated kernel spreads its pixels out and needs more padding).")
        arguments = (kernel_size, dilation) if takes_dilation else (kernel_size,)
        answer = _call_answer(padding_function, *arguments, who=f"Your function, for kernel_size={kernel_size},")
        where = f"kernel_size={kernel_size}" + (f", dilation={dilation}" if dilation > 1 else "")
        if answer is None:
            _fail(f"For {where} your function returns None: did you forget `return`?")
        if isinstance(answer, float):
            _fail(f"For {where} your function returns {answer!r}, a float; nn.Conv2d needs a whole number of "
                  "pixels: use integer division `//`.")
        if not isinstance(answer, (int, np.integer)):
            _fail(f"For {where} your function returns a {_type_name(answer)}; return the padding as a whole "
                  "number of pixels.")
        if answer != expected:
            size = 32 + 2 * int(answer) - dilation * (kernel_size - 1)
            hint = (" A dilated kernel covers dilation * (kernel_size - 1) + 1 pixels." if dilation > 1
                    else " The kernel trims kernel_size - 1 pixels; pad half of that on each side.")
            _fail(f"For {where} your function returns padding {answer}, which turns a 32x32 image into "
                  f"{size}x{size}; it must stay 32x32.{hint}")
    _passed("Padding keeps the image size for kernels 1, 3, 5, 7 and with dilation 2.")


_BLOCK_ADVICE = {
    nn.BatchNorm2d: " nn.BatchNorm2d needs the number of channels the convolution makes (out_channels).",
    nn.Conv2d: " The convolution's in_channels must be the channels the block receives (in_channels).",
}


def check_conv_block(block: nn.Module, in_channels: int, out_channels: int) -> None:
    """Check a conv block: convolution (no bias), batch norm, ReLU, 2x2 max-pool, in this order.

    The order is read from a forward pass (hooks on the layers), not from the order the layers were
    created in. Also checked: the channels in and out, and that a batch comes out at half height and width.
    """
    if block is None:
        _fail("conv_block returns None: did you forget `return`?")
    if isinstance(block, (list, tuple)):
        _fail(f"conv_block returns a Python {type(block).__name__} of layers: wrap them in nn.Sequential(...). "
              f"A {type(block).__name__} is not a module, so PyTorch can neither run it on a batch nor find its "
              "parameters to train.")
    if isinstance(block, nn.ModuleList):
        _fail("conv_block returns an nn.ModuleList, which holds layers but cannot run them (it has no "
              "forward): use nn.Sequential, which runs its layers in order.")
    if not isinstance(block, nn.Module):
        _fail(f"conv_block returns a {_type_name(block)}, not a layer: return an nn.Sequential of the layers.")
    convolutions = _layers(block, nn.Conv2d)
    if not convolutions:
        _fail("The block has no nn.Conv2d: start it with nn.Conv2d(in_channels, out_channels, kernel_size, "
              "padding=...).")
    if convolutions[0].in_channels != in_channels:
        _fail(f"The block's convolution expects {convolutions[0].in_channels} input channels, but the block "
              f"receives {in_channels}: use in_channels as the convolution's first argument.")
    if convolutions[-1].out_channels != out_channels:
        _fail(f"The block's convolution makes {convolutions[-1].out_channels} channels, but it should make "
              f"{out_channels}: use out_channels as the convolution's second argument.")
    if not _layers(block, nn.BatchNorm2d):
        _fail(f"The block has no batch norm: add nn.BatchNorm2d({out_channels}) after the convolution.")
    if not _layers(block, nn.ReLU):
        _fail("The block has no ReLU: add nn.ReLU() after the batch norm, or the block stays linear.")
    if _layers(block, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
        _fail("The block pools by averaging; the exercise asks for max-pooling, nn.MaxPool2d(2). Max-pooling keeps "
              "the strongest response in each 2x2 window (a feature found anywhere in it stays found), while "
              "averaging dilutes a strong, small response with its weaker neighbours.")
    if not _layers(block, nn.MaxPool2d):
        _fail("The block has no nn.MaxPool2d(2), so it does not halve the height and width of the image.")
    result = _forward(block, torch.randn(2, in_channels, 16, 16), "block")
    if result.error is not None:
        _forward_failed(result, f"The block fails on a batch of shape (2, {in_channels}, 16, 16)", _BLOCK_ADVICE)
    modules = dict(block.named_modules())
    order = [modules[name] for name in result.called
             if isinstance(modules.get(name), (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d))]
    for position, layer in enumerate(order[:-1]):
        if isinstance(layer, nn.Conv2d) and layer.bias is not None and isinstance(order[position + 1], nn.BatchNorm2d):
            _fail("The convolution has a bias, but the batch norm right after it subtracts each channel's mean, "
                  "which removes any constant the bias adds: the bias would be a parameter that learns nothing. "
                  "Give the convolution bias=False (the batch norm's own shift takes its place).")
    kinds = [type(layer) for layer in order]
    if nn.BatchNorm2d in kinds and nn.ReLU in kinds and kinds.index(nn.ReLU) < kinds.index(nn.BatchNorm2d):
        _fail("The block applies the ReLU before the batch norm. The exercise's order is convolution, batch norm, "
              "ReLU, max-pool (as in the batch-norm paper and ResNet): normalise the convolution's output, then "
              "let the ReLU cut at zero. The other way round, the batch norm shifts the ReLU's non-negative "
              "outputs back around zero, so the block no longer ends in a ReLU's output.")
    output = result.output
    expected = (2, out_channels, 8, 8)
    if not isinstance(output, torch.Tensor):
        _fail(f"The block returns a {_type_name(output)}, not a tensor: it should return the pooled feature maps.")
    if tuple(output.shape) != expected:
        hint = ""
        if output.shape[-1] < 8:
            hint = " The convolution shrinks the image: give it padding that keeps the size (same_padding)."
        elif output.shape[-1] > 8:
            hint = " Pooling should halve height and width: use nn.MaxPool2d(2)."
        _fail(f"A (2, {in_channels}, 16, 16) batch comes out as {tuple(output.shape)}, expected {expected}."
              f"{hint}")
    _passed(f"The block maps {in_channels} to {out_channels} channels and halves height and width.")


_CNN_ADVICE = {
    nn.Linear: " The classifier's in_features must be the number of channels the last block makes "
               "(channels[-1]): global average pooling and flattening leave one feature per channel.",
    nn.Conv2d: " Each block's in_channels must be the out_channels of the block before it (3, the RGB "
               "channels, for the first block).",
    nn.BatchNorm2d: " A batch norm needs the number of channels of the convolution before it.",
}


def check_cnn(model: nn.Module, num_classes: int, image_size: int,
              attributes: Sequence[str] = ("features", "pool", "flatten", "dropout", "classifier")) -> None:
    """Check a CNN: takes RGB images, gives ``num_classes`` scores per image, works at any image size.

    ``attributes`` are the layer names that the lesson's later cells use (``model.features`` and so on).
    Hooks on these layers check that ``forward`` calls each one that learns or acts in training: a forward
    that skips ``self.dropout`` gives the same scores in eval mode, so only the hooks can see it.
    """
    _expect_module(model, "The model")
    convolutions = _layers(model, nn.Conv2d)
    if convolutions and convolutions[0].in_channels != 3:
        _fail(f"The first convolution expects {convolutions[0].in_channels} input channel(s), but the images "
              "are RGB with 3 channels: use in_channels=3 in the first block.")
    result = _forward(model, torch.randn(2, 3, image_size, image_size), "model")
    if result.error is not None:
        _forward_failed(result, f"The model fails on a batch of two {image_size}x{image_size} RGB images",
                        _CNN_ADVICE)
    output = result.output
    if not isinstance(output, torch.Tensor):
        _fail(f"forward returns {_type_name(output)}: return the class scores, the output of self.classifier"
              + (" (did you forget `return`?)." if output is None else "."))
    if output.dim() != 2:
        _fail(f"The model's output has shape {tuple(output.shape)}; it should be (batch, {num_classes}): "
              "flatten the pooled features (nn.Flatten()) before the last nn.Linear.")
    if output.shape[1] != num_classes:
        _fail(f"The model gives {output.shape[1]} scores per image but there are {num_classes} classes: the "
              f"last nn.Linear needs out_features={num_classes}.")
    if _looks_like_probabilities(output):
        _fail("forward returns probabilities (every row is in [0, 1] and sums to 1): return the raw scores "
              "(logits) of the last nn.Linear. nn.CrossEntropyLoss applies the softmax itself; a second one "
              "flattens the gradients and slows learning.")
    other_size = image_size + 32
    other = _forward(model, torch.randn(2, 3, other_size, other_size), "model").output
    if not isinstance(other, torch.Tensor) or tuple(other.shape) != (2, num_classes):
        _fail(f"The model works on {image_size}x{image_size} images but not on {other_size}x{other_size}: "
              "add global average pooling (nn.AdaptiveAvgPool2d(1)) before Flatten, so the classifier sees "
              "the same number of features whatever the image size.")
    missing = [name for name in attributes if not isinstance(getattr(model, name, None), nn.Module)]
    if missing:
        _fail(f"The model has no layer named {', '.join(f'self.{name}' for name in missing)}; later cells use "
              f"these names: create them in __init__ as self.{missing[0]} = ... (names of the exercise text).")
    for name in attributes:
        layer = getattr(model, name)
        if isinstance(layer, nn.Dropout) and not _was_called(name, result.called):
            _fail(f"forward never calls self.{name}: apply it to the pooled, flattened features right before "
                  "the classifier. In eval mode dropout does nothing, so the scores look right, but in training it "
                  "is what keeps the network from relying on a few features.")
        if any(True for _ in layer.parameters()) and not _was_called(name, result.called):
            _fail(f"forward never calls self.{name}, so its weights would never learn: use it in forward.")
    _passed(f"The CNN turns RGB images of any size into {num_classes} class scores.")


def _looks_like_probabilities(output: torch.Tensor) -> bool:
    values = output.detach().float()
    return bool(values.min() >= 0 and values.max() <= 1
                and torch.allclose(values.sum(dim=1), torch.ones(len(values)), atol=1e-4))


def _toy_split() -> tuple[Any, int]:
    """A small split whose test images share tracks with train (3 images) and with val only (2 images)."""
    from course_utils.samples import Sample
    from course_utils.splits import Split

    def samples(part: str, groups: Sequence[str]) -> list[Sample]:
        return [Sample(f"{part}/{index}_{group}.png", index % 2, group) for index, group in enumerate(groups)]

    train = samples("train", ["t1", "t1", "t2", "t3"])
    val = samples("val", ["t4", "t5"])
    test = samples("test", ["t1", "t1", "t2", "t4", "t4", "t6", "t7"])
    return Split(["a", "b"], train, val, test), 3


def check_train_siblings(count_function: Callable[[Any], Any], split: Any | None = None) -> None:
    """Check ``count_function(split) -> int``: how many *test images* share their track with a training image.

    The function is tried on a small made-up split first; with ``split`` it is also compared with the
    package's answer on that split.
    """
    toy, expected = _toy_split()
    answer = _call_answer(count_function, toy)
    if answer is None:
        _fail("The function returns None: did you forget `return`?")
    if isinstance(answer, (set, list, tuple, dict)) or isinstance(answer, bool):
        _fail(f"The function returns a {type(answer).__name__}; return a number: the count of test images.")
    if answer == 2:
        _fail("On a test split with 3 images whose tracks are in train, your function says 2: it counts "
              "tracks, not images. Count each test image whose group is among the training groups.")
    if answer == 5:
        _fail("Your function also counts test images whose track is only in val: compare with the groups of "
              "split.train only.")
    if answer != expected:
        _fail(f"On a small test split with {expected} images whose track is also in train, your function "
              f"says {answer}. Count the test images whose group (track) also occurs among the training images' "
              "groups.")
    if split is not None:
        from course_utils.splits import test_images_with_train_sibling

        wanted = test_images_with_train_sibling(split)
        got = _call_answer(count_function, split)
        if got != wanted:
            _fail(f"On the lesson's split your function says {got}, but {wanted} test images share a track "
                  "with train.")
    _passed("The function counts the test images that have a frame of the same track in train.")


def check_training_step(train_step: Callable[..., Any]) -> None:
    """Check ``train_step(model, images, labels, optimizer, loss_fn) -> loss``: one optimisation step.

    The step must clear old gradients (before ``backward``, or after ``step`` ready for the next batch),
    compute the loss of this batch, backpropagate, update the weights and return the loss as a number.
    The check calls it twice on a tiny linear model and compares the second update with the gradient of
    the second batch's loss alone: gradients left over from the first batch must not leak in.
    """
    generator = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 4, generator=generator), torch.arange(8) % 3) for _ in range(2)]
    model, loss_fn = nn.Linear(4, 3), nn.CrossEntropyLoss()
    with torch.no_grad():
        model.weight.copy_(torch.randn(3, 4, generator=generator))
        model.bias.zero_()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)  # lr 1: the update equals the gradient used
    _call_answer(train_step, model, *batches[0], optimizer, loss_fn, who="Your train_step")
    leftover = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
    reference = nn.Linear(4, 3)
    reference.load_state_dict(model.state_dict())
    reference_loss = loss_fn(reference(batches[1][0]), batches[1][1])
    reference_loss.backward()
    expected_loss = reference_loss.item()
    before = [parameter.detach().clone() for parameter in model.parameters()]
    result = _call_answer(train_step, model, *batches[1], optimizer, loss_fn, who="Your train_step")
    updates = [b - p.detach() for b, p in zip(before, model.parameters(), strict=True)]
    wanted = [p.grad for p in reference.parameters()]

    def update_is(gradients: list[torch.Tensor]) -> bool:
        return all(torch.allclose(u, g, atol=1e-5) for u, g in zip(updates, gradients, strict=True))

    if update_is([torch.zeros_like(u) for u in updates]):
        gradients = [p.grad for p in model.parameters()]
        if all(g is None or not g.any() for g in gradients):
            _fail("The weights did not change and the gradients are empty: call loss.backward() and then "
                  "optimizer.step() (optimizer.zero_grad() between backward and step wipes the gradients).")
        _fail("The weights did not change: call optimizer.step() after loss.backward().")
    if any(g.any() for g in leftover) and update_is([g + old for g, old in zip(wanted, leftover, strict=True)]):
        _fail("The update mixed in gradients left over from the previous batch: call optimizer.zero_grad() "
              "at the start of the step (PyTorch adds new gradients to the old ones).")
    if any(g.any() for g in leftover) and update_is(leftover):
        _fail("The weights moved by the previous batch's gradients only: call loss.backward() before "
              "optimizer.step() to compute the gradients of this batch.")
    if not update_is(wanted):
        _fail("The weights changed, but not by the gradient of this batch's loss: one step backpropagates the "
              "loss of this batch's images once and updates the weights once.")
    if result is None:
        _fail("The step returns None: return the loss (loss.item()) so the loop can report it.")
    if isinstance(result, torch.Tensor):
        _fail("The step returns the loss tensor: return loss.item(), a plain number. The tensor keeps the "
              "whole computation graph of the batch alive, and summing such tensors over an epoch holds "
              "every batch's graph in memory.")
    try:
        value = float(result)
    except (TypeError, ValueError):
        _fail(f"The step returns {type(result).__name__}; return the loss as a number: loss.item().")
    if not math.isclose(value, expected_loss, rel_tol=1e-4, abs_tol=1e-6):
        _fail(f"The step returns {value:.4g}, but this batch's loss is {expected_loss:.4g}: return "
              "loss.item() of the loss you called backward() on.")
    _passed("The step clears old gradients, backpropagates this batch's loss, updates the weights and "
            "returns the loss.")
