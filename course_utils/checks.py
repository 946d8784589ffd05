"""One-line self-checks for the lessons' exercises.

Call a check right after your answer, for example ``check_head(model, num_classes=4)``. When the answer
works it prints one line starting with ✅. When it does not, it raises :class:`ExerciseError` whose message
says in plain words what is wrong and how to fix it, so the notebook stops at that cell. In a notebook the
error shows that ❌ message alone, without a traceback through this file.

The checks are ordered by lesson, in the order the exercises come.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np
import torch
from torch import nn

from course_utils.config import UNKNOWN_CLASS
from course_utils.devices import evaluating
from course_utils.image_files import to_numpy
from course_utils.models import body_blocks, find_head, head_parameters

__all__ = ["ExerciseError", "check_all_frozen", "check_class_weights", "check_cnn", "check_conv_block",
           "check_features", "check_frozen", "check_head", "check_held_out_types", "check_mlp_head",
           "check_optimizer_groups", "check_padding", "check_prediction_function", "check_probabilities",
           "check_rare_classes", "check_split_has_no_leak", "check_threshold", "check_train_siblings",
           "check_training_step", "check_unfrozen_last_blocks", "check_unknown_layout"]


class ExerciseError(AssertionError):
    """An exercise's answer does not work yet; the message says what is wrong and hints at the fix.

    IPython and Jupyter show what ``_render_traceback_`` returns instead of a traceback: the ❌ message
    alone, since the traceback would only lead into this file, not to the student's mistake. The cell
    still fails, so Run All, papermill and nbval stop there.
    """

    def _render_traceback_(self) -> list[str]:
        return str(self).splitlines()


def _passed(message: str) -> None:
    print(f"✅ {message}")


def _fail(message: str) -> NoReturn:
    raise ExerciseError(f"❌ {message}")


def _count(parameters: Sequence[torch.Tensor]) -> int:
    return sum(parameter.numel() for parameter in parameters)


def _run(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Run ``model`` in eval mode without gradients, leaving its train/eval mode as it was."""
    reference = next(model.parameters(), None)
    if reference is not None:
        batch = batch.to(device=reference.device, dtype=reference.dtype)
    with evaluating(model):
        return model(batch)

# ----------------------------------------------------------------------------------------------------------
# Lesson 1: padding, blocks, the CNN, the track-aware split, the training step
# ----------------------------------------------------------------------------------------------------------


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
        answer = padding_function(kernel_size, dilation) if takes_dilation else padding_function(kernel_size)
        where = f"kernel_size={kernel_size}" + (f", dilation={dilation}" if dilation > 1 else "")
        if answer is None:
            _fail(f"For {where} your function returns None: did you forget `return`?")
        if isinstance(answer, float):
            _fail(f"For {where} your function returns {answer!r}, a float; nn.Conv2d needs a whole number of "
                  "pixels: use integer division `//`.")
        if answer != expected:
            size = 32 + 2 * int(answer) - dilation * (kernel_size - 1)
            hint = (" A dilated kernel covers dilation * (kernel_size - 1) + 1 pixels." if dilation > 1
                    else " The kernel trims kernel_size - 1 pixels; pad half of that on each side.")
            _fail(f"For {where} your function returns padding {answer}, which turns a 32x32 image into "
                  f"{size}x{size}; it must stay 32x32.{hint}")
    _passed("Padding keeps the image size for kernels 1, 3, 5, 7 and with dilation 2.")


def _layers(module: nn.Module, kind: type | tuple[type, ...]) -> list[nn.Module]:
    return [layer for layer in module.modules() if isinstance(layer, kind)]


def check_conv_block(block: nn.Module, in_channels: int, out_channels: int) -> None:
    """Check a conv block: convolution, batch norm, ReLU and max-pool; channels in/out; halves H and W."""
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
    if not _layers(block, (nn.MaxPool2d, nn.AvgPool2d)):
        _fail("The block has no nn.MaxPool2d(2), so it does not halve the height and width of the image.")
    try:
        output = _run(block, torch.randn(2, in_channels, 16, 16))
    except RuntimeError as error:
        _fail(f"The block fails on a batch of shape (2, {in_channels}, 16, 16): {error}")
    expected = (2, out_channels, 8, 8)
    if tuple(output.shape) != expected:
        hint = ""
        if output.shape[-1] < 8:
            hint = " The convolution shrinks the image: give it padding that keeps the size (same_padding)."
        elif output.shape[-1] > 8:
            hint = " Pooling should halve height and width: use nn.MaxPool2d(2)."
        _fail(f"A (2, {in_channels}, 16, 16) batch comes out as {tuple(output.shape)}, expected {expected}."
              f"{hint}")
    _passed(f"The block maps {in_channels} to {out_channels} channels and halves height and width.")


def check_cnn(model: nn.Module, num_classes: int, image_size: int,
              attributes: Sequence[str] = ("features", "pool", "flatten", "dropout", "classifier")) -> None:
    """Check a CNN: takes RGB images, gives ``num_classes`` scores per image, works at any image size.

    ``attributes`` are the layer names that the lesson's later cells use (``model.features`` and so on).
    """
    convolutions = _layers(model, nn.Conv2d)
    if convolutions and convolutions[0].in_channels != 3:
        _fail(f"The first convolution expects {convolutions[0].in_channels} input channel(s), but the images "
              "are RGB with 3 channels: use in_channels=3 in the first block.")
    try:
        output = _run(model, torch.randn(2, 3, image_size, image_size))
    except RuntimeError as error:
        _fail(f"The model fails on a batch of two {image_size}x{image_size} RGB images: {error}")
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
    try:
        other = _run(model, torch.randn(2, 3, other_size, other_size))
    except RuntimeError:
        other = None
    if other is None or tuple(other.shape) != (2, num_classes):
        _fail(f"The model works on {image_size}x{image_size} images but not on {other_size}x{other_size}: "
              "add global average pooling (nn.AdaptiveAvgPool2d(1)) before Flatten, so the classifier sees "
              "the same number of features whatever the image size.")
    missing = [name for name in attributes if not isinstance(getattr(model, name, None), nn.Module)]
    if missing:
        _fail(f"The model has no layer named {', '.join(f'self.{name}' for name in missing)}; later cells use "
              f"these names: create them in __init__ as self.{missing[0]} = ... (names of the exercise text).")
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
    answer = count_function(toy)
    if answer is None:
        _fail("The function returns None: did you forget `return`?")
    if isinstance(answer, (set, list, tuple, dict)):
        _fail(f"The function returns a {type(answer).__name__}; return a number: the count of test images.")
    if answer == 2:
        _fail("On a test split with 3 images whose tracks are in train, your function says 2: it counts "
              "tracks, not images. Count each test image whose group is among the training groups.")
    if answer == 5:
        _fail("Your function also counts test images whose track is only in val: compare with the groups of "
              "split.train only.")
    if answer != expected:
        _fail(f"On a small test split with {expected} images whose track is also in train, your function "
              f"says {answer}. Collect {{s.group for s in split.train}}, then count the test images whose "
              "group is in it.")
    if split is not None:
        from course_utils.splits import test_images_with_train_sibling

        wanted = test_images_with_train_sibling(split)
        if count_function(split) != wanted:
            _fail(f"On the lesson's split your function says {count_function(split)}, but {wanted} test images "
                  "share a track with train.")
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
    train_step(model, *batches[0], optimizer, loss_fn)
    leftover = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
    reference = nn.Linear(4, 3)
    reference.load_state_dict(model.state_dict())
    reference_loss = loss_fn(reference(batches[1][0]), batches[1][1])
    reference_loss.backward()
    expected_loss = reference_loss.item()
    before = [parameter.detach().clone() for parameter in model.parameters()]
    result = train_step(model, *batches[1], optimizer, loss_fn)
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
        _fail("The weights changed, but not by the gradient of this batch's loss: compute "
              "loss = loss_fn(model(images), labels), then loss.backward() and optimizer.step() once.")
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

# ----------------------------------------------------------------------------------------------------------
# Lesson 2: freezing, the head, cached features
# ----------------------------------------------------------------------------------------------------------


def _find_head(model: nn.Module) -> tuple[str, nn.Module]:
    try:
        return find_head(model)
    except ValueError:
        _fail("The model has no classifier layer at its end (model.fc or model.classifier should be an "
              "nn.Linear): put a new nn.Linear head there.")


def _split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    _find_head(model)
    head_ids = {id(parameter) for parameter in head_parameters(model)}
    head = [p for p in model.parameters() if id(p) in head_ids]
    body = [p for p in model.parameters() if id(p) not in head_ids]
    return head, body


def check_all_frozen(model: nn.Module) -> None:
    """Check that no parameter of ``model`` will train (every ``requires_grad`` is False)."""
    parameters = list(model.parameters())
    trainable = [p for p in parameters if p.requires_grad]
    if trainable and getattr(model, "requires_grad", None) is False:
        _fail("model.requires_grad = False only sets a new attribute on the module; it freezes nothing. "
              "Set requires_grad = False on each parameter: loop over model.parameters() (or call "
              "model.requires_grad_(False)).")
    if trainable:
        _fail(f"{_count(trainable):,} of the model's {_count(parameters):,} parameters are still trainable: "
              "set parameter.requires_grad = False for every parameter in model.parameters().")
    _passed(f"All {_count(parameters):,} parameters are frozen; nothing would train yet.")


def check_head(model: nn.Module, num_classes: int) -> None:
    """Check that the model's ImageNet classifier was replaced by a head for ``num_classes`` classes."""
    path, head = _find_head(model)
    used: list[str] = []
    names = {module: name for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    hooks = [module.register_forward_hook(lambda module, inputs, output: used.append(names[module]))
             for module in names]
    seen: dict[str, tuple[int, ...]] = {}
    hooks.append(head.register_forward_pre_hook(
        lambda module, inputs: seen.update(shape=tuple(inputs[0].shape))))
    try:
        output = _run(model, torch.randn(1, 3, 64, 64))
        error = None
    except RuntimeError as problem:
        output, error = None, problem
    finally:
        for hook in hooks:
            hook.remove()
    unused = [name for name, module in model.named_children()
              if isinstance(module, nn.Linear) and module.out_features == num_classes and name not in used]
    if unused and used:
        _fail(f"You set model.{unused[0]}, but this {type(model).__name__} never uses it: its forward ends "
              f"in model.{used[-1]}. Put the new layer there (models.find_head(model) tells where the head "
              "is) and delete the unused one.")
    outputs = getattr(head, "out_features", None)
    if outputs == 1000 and num_classes != 1000:
        _fail(f"The head was not replaced: model.{path} still outputs the 1000 ImageNet classes. Replace it "
              f"with a new layer with {num_classes} outputs (or call models.replace_head).")
    if outputs != num_classes:
        _fail(f"The head outputs {outputs} classes, but the data set has {num_classes}: use "
              f"out_features={num_classes} in the last nn.Linear.")
    if error is not None:
        if "shape" in seen:
            _fail(f"The backbone hands {seen['shape'][-1]} features to the head, but the head expects "
                  "a different number: keep the old layer's in_features (e.g. model.fc.in_features).")
        _fail(f"The model fails on a small test batch: {error}")
    if tuple(output.shape) != (1, num_classes):
        _fail(f"The model's output has shape {tuple(output.shape)}, expected (batch, {num_classes}).")
    _passed(f"New head at model.{path}: {seen['shape'][-1]} features in, {num_classes} classes out.")


def check_frozen(model: nn.Module) -> None:
    """Check that the backbone is frozen and the head is not."""
    head, body = _split_parameters(model)
    trainable_body = [p for p in body if p.requires_grad]
    if trainable_body:
        _fail(f"The backbone is not frozen: {_count(trainable_body):,} of its {_count(body):,} parameters "
              "are still trainable. Set requires_grad = False on every parameter, then replace the head "
              "(a new layer trains), or call models.freeze_backbone(model).")
    if not any(p.requires_grad for p in head):
        _fail("The head is frozen too, so nothing would learn: freeze the backbone first and replace the "
              "head afterwards (new layers are trainable), or set requires_grad = True on the head's "
              "parameters.")
    trainable = _count([p for p in head if p.requires_grad])
    _passed(f"Backbone frozen: only the head's {trainable:,} of {_count(head) + _count(body):,} parameters "
            "will train.")


def check_features(features: Any, labels: Any, samples: Sequence[Any], feature_dim: int) -> None:
    """Check the features of ``samples``: one row per image, ``feature_dim`` columns, labels in order."""
    if not isinstance(features, torch.Tensor) or features.dim() != 2:
        shape = tuple(features.shape) if hasattr(features, "shape") else type(features).__name__
        _fail(f"Expected a 2-D tensor of features (images, {feature_dim}), got {shape}.")
    if features.shape[1] != feature_dim:
        _fail(f"Each image has {features.shape[1]} values, but the backbone gives {feature_dim} features: "
              "run models.feature_extractor(model), whose head is nn.Identity; the model itself gives "
              "class scores.")
    if len(features) != len(samples) or len(labels) != len(samples):
        _fail(f"{len(features)} feature rows and {len(labels)} labels for {len(samples)} images: run the "
              "backbone over every image of the split exactly once (drop_last must stay False).")
    expected = torch.as_tensor([int(sample[1]) for sample in samples])
    if not torch.equal(torch.as_tensor(labels).long().cpu(), expected):
        _fail("The labels are not in the order of the samples: build the loader with shuffle=False, so "
              "that row i of the features belongs to image i.")
    if not torch.isfinite(features).all():
        _fail("The features contain NaN or infinite values.")
    _passed(f"{len(features)} images, {feature_dim} features each, labels in sample order.")

# ----------------------------------------------------------------------------------------------------------
# Lesson 3: unfreezing, two learning rates, predicting one image
# ----------------------------------------------------------------------------------------------------------


def check_unfrozen_last_blocks(model: nn.Module, n: int) -> None:
    """Check that exactly the last ``n`` body blocks and the head are trainable, earlier blocks frozen."""
    blocks = body_blocks(model)
    head, _ = _split_parameters(model)
    if not any(p.requires_grad for p in head):
        _fail("The head is frozen: it must always train. Set requires_grad = True on its parameters.")
    first_trainable = len(blocks) - n
    for index, block in enumerate(blocks):
        parameters = list(block.parameters())
        trainable = [p for p in parameters if p.requires_grad]
        if index < first_trainable and trainable:
            _fail(f"Block {index + 1} of {len(blocks)} trains too ({_count(trainable):,} parameters), but "
                  f"only the last {n} should: leave the earlier blocks frozen.")
        if index >= first_trainable and len(trainable) < len(parameters):
            state = "is still frozen" if not trainable else "is only partly unfrozen"
            _fail(f"Block {index + 1} of {len(blocks)} {state}, but the last {n} blocks should train: set "
                  "requires_grad = True on all of their parameters (or call models.unfreeze(model, "
                  f"last_blocks={n})).")
    trainable_total = _count([p for p in model.parameters() if p.requires_grad])
    _passed(f"The head and the last {n} of {len(blocks)} body blocks train ({trainable_total:,} parameters); "
            "earlier blocks stay frozen.")


def check_optimizer_groups(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    """Check an optimizer for fine-tuning: only trainable parameters, the whole head, a smaller body lr."""
    head, body = _split_parameters(model)
    learning_rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    frozen = [p for p in model.parameters() if not p.requires_grad and id(p) in learning_rates]
    if frozen:
        _fail(f"The optimizer holds {len(frozen)} frozen parameter tensors ({_count(frozen):,} numbers). "
              "They get no gradient, so the optimizer skips them today, but unfrozen later they would train "
              "at their group's learning rate without anyone choosing it. Pass only trainable ones, e.g. "
              "[p for p in model.parameters() if p.requires_grad], or use models.parameter_groups.")
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
        if body_lr >= head_lr:
            _fail(f"The body learns at lr={body_lr:g}, not less than the head's lr={head_lr:g}: give the "
                  "pretrained body a smaller learning rate (e.g. 10 times smaller) so fine-tuning does not "
                  "wreck what it learned on ImageNet.")
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
    from course_utils.evaluation import predict_image

    trial = copy.deepcopy(model).train()
    buffers = {name: buffer.detach().clone() for name, buffer in trial.named_buffers()
               if buffer.is_floating_point()}
    answer = predict_function(trial, path, transform, classes)
    changed = [name for name, buffer in trial.named_buffers()
               if name in buffers and not torch.equal(buffer.detach(), buffers[name])]
    if changed:
        _fail(f"Predicting changed the model: {len(changed)} BatchNorm statistics (e.g. {changed[0]}) moved "
              "towards this one image. Call model.eval() before the forward pass: in training mode BatchNorm "
              "uses and updates batch statistics, and dropout drops features at random.")
    if answer is None:
        _fail("The function returns None: did you forget `return`?")
    expected = predict_image(model, path, transform, classes)
    index = list(getattr(answer, "index", []))
    if sorted(index) != sorted(expected.index):
        _fail(f"Return a pandas Series indexed by the class names {list(classes)[:4]}...: "
              "pd.Series(probabilities, index=classes).")
    values = np.asarray(answer, dtype=float)
    if values.min() < 0 or values.max() > 1 or not math.isclose(values.sum(), 1, abs_tol=1e-3):
        _fail("The values are not probabilities (each in [0, 1], summing to 1): apply "
              "torch.softmax(logits, dim=1) to the model's output.")
    if index != list(expected.index):
        _fail("Sort the probabilities from highest to lowest: .sort_values(ascending=False).")
    if not np.allclose(values, expected.to_numpy(), atol=1e-3):
        _fail("The probabilities differ from evaluation.predict_image's for the same image: use the "
              "evaluation transform and the model in eval mode.")
    _passed(f"Eval mode, softmax over {len(index)} classes, highest first: the same as "
            "evaluation.predict_image.")

# ----------------------------------------------------------------------------------------------------------
# Lesson 4: the unknown class, class weights, probabilities and a threshold
# ----------------------------------------------------------------------------------------------------------


def check_unknown_layout(
    classes: Sequence[str], known: Sequence[str], unknown_name: str = UNKNOWN_CLASS
) -> None:
    """Check the class list of the "known classes + unknown" layout of lesson 4."""
    classes = list(classes)
    if unknown_name not in classes:
        _fail(f"There is no {unknown_name!r} class: fold every sign that is not one of {list(known)} into "
              f"one class named {unknown_name!r}.")
    lost = [name for name in known if name not in classes]
    if lost:
        _fail(f"The known class(es) {lost} are missing: keep every known class as it is.")
    extra = [name for name in classes if name not in known and name != unknown_name]
    if extra:
        _fail(f"The class(es) {extra[:5]} should have been folded into {unknown_name!r}: only the known "
              f"classes and {unknown_name!r} remain.")
    if len(classes) != len(set(classes)):
        _fail("A class name appears twice in the class list.")
    _passed(f"{len(known)} known classes plus {unknown_name!r}.")


def check_split_has_no_leak(split: Any) -> None:
    """Check that no group (a sign's track) appears in more than one of train, val and test."""
    parts = {name: {sample.group for sample in getattr(split, name)} for name in ("train", "val", "test")}
    for name, groups in parts.items():
        if not groups:
            _fail(f"The {name} part is empty: every part needs some groups.")
    names = list(parts)
    for position, first in enumerate(names):
        for second in names[position + 1:]:
            shared = sorted(parts[first] & parts[second])
            if shared:
                _fail(f"{len(shared)} group(s) appear in both {first} and {second}, e.g. {shared[0]!r}: "
                      "frames of one physical sign would be on both sides and inflate the score. Split by "
                      "group (tracks), not by image (group_aware=True).")
    counts = ", ".join(f"{len(groups)} {name}" for name, groups in parts.items())
    _passed(f"No group is shared between parts ({counts} groups).")


def check_held_out_types(split: Any, source: Any, held_out: Sequence[str]) -> None:
    """Check lesson 4's unknown-class split against the split with every sign type it was built from.

    ``split`` has the known classes plus "unknown"; ``source`` is the split of all sign types
    (``load_dataset(..., classes="all")``); ``held_out`` are sign types that must never be trained on, not
    even as "unknown": they may appear only in the test part, which keeps every image of ``source.test``.
    """
    type_of = {sample.path: source.classes[sample.label]
               for part in (source.train, source.val, source.test) for sample in part}
    held = set(held_out)
    for name in ("train", "val", "test"):
        part = getattr(split, name)
        if name != "test":
            found = [type_of.get(sample.path) for sample in part if type_of.get(sample.path) in held]
            if found:
                _fail(f"{len(found)} image(s) of the held-out sign type(s) {sorted(set(found))} are in {name}: "
                      "drop them from train and val (only), so that the test shows how the model treats sign "
                      "types it never saw.")
        kept = {sample.path for sample in part}
        lost = [type_of[sample.path] for sample in getattr(source, name)
                if sample.path not in kept and (name == "test" or type_of[sample.path] not in held)]
        if lost:
            where = "every test image, held-out types included" if name == "test" else \
                "every image of the sign types that are not held out"
            _fail(f"The {name} part lost {len(lost)} image(s) of {sorted(set(lost))[:5]}: keep {where}.")
        for sample in part:
            sign = type_of.get(sample.path)
            name_wanted = sign if sign in split.classes else UNKNOWN_CLASS
            if name_wanted not in split.classes:
                continue  # check_unknown_layout reports a missing "unknown" class
            wanted = split.classes.index(name_wanted)
            if sample.label != wanted:
                _fail(f"A {sign!r} image in {name} has label {sample.label} ({split.classes[sample.label]!r}), "
                      f"expected {wanted} ({split.classes[wanted]!r}): relabel with splits.with_unknown_class.")
    missing = sorted(held - {type_of[sample.path] for sample in split.test})
    if missing:
        _fail(f"The held-out sign type(s) {missing} have no test images: hold out types that the data set has.")
    in_test = sum(type_of[sample.path] in held for sample in split.test)
    _passed(f"{len(held)} held-out sign type(s) appear only in test ({in_test} images); train and val keep "
            "every other sign type.")


def check_class_weights(class_weights: Any, counts: Any, classes: Sequence[str]) -> None:
    """Check per-class loss weights inversely proportional to the training images per class.

    ``counts[i]`` is the number of training images of ``classes[i]``; the weights must be one positive
    number per class, with ``weight * count`` the same for every class (so each class adds the same total
    weight to the loss), scaled so that a balanced data set gets weight 1 everywhere.
    """
    weights = to_numpy(class_weights).astype(float).ravel()
    numbers = to_numpy(counts).astype(float).ravel()
    if weights.shape != (len(classes),):
        _fail(f"Expected one weight per class ({len(classes)}), got shape {to_numpy(class_weights).shape}.")
    if not np.isfinite(weights).all() or (weights <= 0).any():
        _fail("Every weight must be a positive finite number; a class without images would get an "
              "infinite weight.")
    products = weights * numbers
    if not np.allclose(products, products[0], rtol=1e-3):
        largest, smallest = classes[int(numbers.argmax())], classes[int(numbers.argmin())]
        if weights[int(numbers.argmax())] >= weights[int(numbers.argmin())]:
            _fail(f"The largest class ({largest!r}) gets at least the weight of the smallest ({smallest!r}): "
                  "the weight must shrink as the count grows, weight = total / (classes * count).")
        _fail("weight * count differs between classes: make each weight inversely proportional to its "
              "class's count, e.g. counts.sum() / (len(counts) * counts).")
    if not math.isclose(float(products[0]), float(numbers.sum()) / len(numbers), rel_tol=1e-3):
        _fail("The weights have the right ratios but another scale: divide by the number of classes as well, "
              "counts.sum() / (len(counts) * counts), so that a balanced data set gets weight 1 and the "
              "learning rate keeps its meaning.")
    _passed(f"Weights from {weights.min():.2f} ({classes[int(weights.argmin())]!r}, the largest class) to "
            f"{weights.max():.2f}: every class adds the same total weight to the loss.")


def check_probabilities(probabilities: Any) -> None:
    """Check class probabilities: one row per image, every value in [0, 1], every row summing to 1."""
    values = to_numpy(probabilities).astype(float)
    if values.ndim != 2:
        _fail(f"Expected one row per image and one column per class (2-D), got shape {values.shape}.")
    if values.min() < 0 or values.max() > 1:
        _fail(f"Values range from {values.min():.3g} to {values.max():.3g}, outside [0, 1]: these look like "
              "logits; turn them into probabilities with torch.softmax(logits, dim=1).")
    rows = values.sum(axis=1)
    if not np.allclose(rows, 1, atol=1e-4):
        if values.shape[0] > 1 and np.allclose(values.sum(axis=0), 1, atol=1e-4):
            _fail("The columns sum to 1 instead of the rows: the softmax ran over the batch; use dim=1.")
        _fail(f"Rows sum to values between {rows.min():.3g} and {rows.max():.3g}, not 1: use softmax over "
              "the classes (dim=1), not a sigmoid per class.")
    _passed(f"{values.shape[0]} rows of probabilities over {values.shape[1]} classes, each summing to 1.")


def check_threshold(threshold: float, known_scores: Any, keep: float) -> None:
    """Check a threshold on confidence scores that keeps about ``keep`` of the known-class images."""
    scores = to_numpy(known_scores).astype(float).ravel()
    threshold = float(threshold)
    if math.isnan(threshold):
        _fail("The threshold is NaN: compute it from the known-class scores.")
    if scores.min() >= 0 and scores.max() <= 1 and not 0 <= threshold <= 1:
        _fail(f"The threshold {threshold:.3g} lies outside [0, 1], where the scores are.")
    kept = float((scores >= threshold).mean())
    tolerance = 1 / len(scores) + 0.01
    if abs(kept - keep) > tolerance:
        hint = (" Take the (1 - keep) quantile: np.quantile(known_scores, 1 - keep)."
                if abs(kept - (1 - keep)) <= tolerance else "")
        _fail(f"The threshold {threshold:.3g} keeps {kept:.1%} of the known-class images, but should keep "
              f"{keep:.1%}.{hint}")
    _passed(f"Threshold {threshold:.3f} keeps {kept:.1%} of known-class images.")


# ------------------------------------------------------------------------------ lesson 5: your own images
def check_rare_classes(too_small: Sequence[str], samples: Sequence[Any], classes: Sequence[str],
                       min_count: int) -> None:
    """Check the list of classes with fewer than ``min_count`` images (lesson 5, Exercise 1)."""
    counts = {name: 0 for name in classes}
    for sample in samples:
        counts[classes[sample.label]] += 1
    expected = sorted(name for name, count in counts.items() if count < min_count)
    if isinstance(too_small, str) or sorted(too_small) != expected:
        _fail(f"Expected the classes with fewer than {min_count} images, {expected}, got {too_small!r}. "
              "Count the samples per class (sample.label is an index into classes).")
    _passed(f"{len(expected)} class(es) below {min_count} images: {', '.join(expected) or 'none'}.")


def check_mlp_head(head: nn.Module, in_features: int, hidden_units: int, num_classes: int) -> None:
    """Check a head with one hidden layer: in_features -> hidden_units -> ReLU -> num_classes (lesson 5)."""
    linears = [module for module in head.modules() if isinstance(module, nn.Linear)]
    shapes = [(module.in_features, module.out_features) for module in linears]
    if shapes != [(in_features, hidden_units), (hidden_units, num_classes)]:
        _fail(f"Expected two linear layers {in_features}->{hidden_units}->{num_classes}, got {shapes}: "
              "use models.replace_head(model, num_classes, hidden_units=(HIDDEN_UNITS,)).")
    if not any(isinstance(module, nn.ReLU) for module in head.modules()):
        _fail("The hidden layer needs a non-linearity (ReLU), or the two layers act as a single linear one.")
    if not all(parameter.requires_grad for parameter in head.parameters()):
        _fail("The new head must be trainable (requires_grad=True).")
    trainable = sum(parameter.numel() for parameter in head.parameters())
    _passed(f"MLP head {in_features} -> {hidden_units} -> {num_classes}: {trainable:,} trainable parameters.")
