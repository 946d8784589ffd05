"""One-line self-checks for the lessons' exercises, and hints in layers.

Call a check right after your answer, for example ``check_head(model, num_classes=4)``. When the answer
works it prints one line starting with ✅. When it does not, it raises :class:`ExerciseError` whose message
says in one line what is wrong, so the notebook stops at that cell. In a notebook the error shows that ❌
line alone, without a traceback. An error raised by your own code while a check runs it (your function, your
model's ``forward``) is reported the same way, with the line of your code where it happened.

Hints come in layers, as in Kaggle Learn's exercises. The first message says what is wrong, not the answer.
``checks.hint(3)`` prints a hint for Exercise 3 of the lesson you are in; ``checks.solution(3)`` prints the
answer (the one line that takes the course package's answer) and where the worked answer is.

Checks judge what the current run did: a layer that an earlier wrong try left behind, which the model never
uses, does not count against a right answer (``check_head`` removes it and says so).

The checks are ordered by lesson, in the order the exercises come; the hints follow at the end.
"""

from __future__ import annotations

import copy
import inspect
import json
import linecache
import math
import os
import re
import site
import sys
import sysconfig
from collections.abc import Callable, Sequence
from pathlib import Path
from traceback import walk_tb
from typing import Any, NamedTuple, NoReturn

import numpy as np
import torch
from torch import nn

from course_utils.config import UNKNOWN_CLASS
from course_utils.devices import evaluating, run_autocast
from course_utils.files import display_path
from course_utils.image_files import load_rgb, to_numpy
from course_utils.models import body_blocks, find_head, head_parameters

__all__ = ["ExerciseError", "check_all_frozen", "check_class_weights", "check_cnn", "check_conv_block",
           "check_features", "check_frozen", "check_head", "check_held_out_types", "check_mlp_head",
           "check_optimizer_groups", "check_padding", "check_prediction_function", "check_probabilities",
           "check_rare_classes", "check_split_has_no_leak", "check_threshold", "check_train_siblings",
           "check_training_step", "check_unfrozen_last_blocks", "check_unknown_layout", "hint", "solution"]


class ExerciseError(AssertionError):
    """An exercise's answer does not work yet; the message says what is wrong and hints at the fix.

    IPython and Jupyter show what ``_render_traceback_`` returns instead of a traceback: the ❌ message
    alone, since the traceback would only lead into this file, not to the student's mistake. The cell
    still fails, so Run All, papermill and nbval stop there.
    """

    def _render_traceback_(self) -> list[str]:
        return str(self).splitlines()


def _passed(message: str) -> None:
    _show_library_errors_briefly()
    print(f"✅ {message}")


def _fail(message: str, *, pointer: bool = True) -> NoReturn:
    """Stop with one ❌ line; ``pointer`` adds where the hint is, when the lesson and exercise are known."""
    _show_library_errors_briefly()
    text = " ".join(message.splitlines())
    raise ExerciseError(f"❌ {text}{_hint_pointer() if pointer else ''}")


def _count(parameters: Sequence[torch.Tensor]) -> int:
    return sum(parameter.numel() for parameter in parameters)


def _type_name(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _run(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Run ``model`` in eval mode without gradients, leaving its train/eval mode as it was."""
    reference = next(model.parameters(), None)
    if reference is not None:
        batch = batch.to(device=reference.device, dtype=reference.dtype)
    with evaluating(model):
        return model(batch)


def _expect_module(value: Any, what: str) -> None:
    """Stop with a plain line when ``value`` is not a model (None from an in-place call, a list, ...)."""
    if isinstance(value, nn.Module):
        return
    if value is None:
        _fail(f"{what} is None. A call that changes a model in place, such as setattr(model, name, layer), "
              "returns None: do not assign its result to the model's variable; the model itself is changed.")
    _fail(f"{what} is a {_type_name(value)}, not a PyTorch model (nn.Module).")

# ----------------------------------------------------------------------------------------------------------
# Errors raised by the student's own code while a check runs it: one line, with the line of their code
# ----------------------------------------------------------------------------------------------------------


def _library_folders() -> tuple[str, ...]:
    """Folders of installed code (the standard library, site-packages, this package): not the student's."""
    paths = sysconfig.get_paths()
    folders = {paths.get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    folders |= set(site.getsitepackages()) | {site.getusersitepackages()}
    folders |= {str(Path(torch.__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)}
    return tuple(os.path.join(os.path.realpath(folder), "") for folder in folders if folder)


def _your_line(error: BaseException) -> str:
    """`` in line 3 of your code (`text`)``: the last place in the traceback that is not installed code."""
    library = _library_folders()
    found = None
    for frame, number in walk_tb(error.__traceback__):
        filename = frame.f_code.co_filename
        if filename.startswith("<frozen"):
            continue
        if filename.startswith("<") or not os.path.realpath(filename).startswith(library):
            found = filename, number
    if found is None:
        return ""
    text = linecache.getline(*found).strip()
    if len(text) > 80:
        text = text[:77] + "..."
    return f" in line {found[1]} of your code (`{text}`)" if text else f" in line {found[1]} of your code"


def _describe(error: BaseException) -> str:
    """``IndexError ("Dimension out of range ...")``: the error's type and its message, shortened to a line."""
    text = " ".join(str(error).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f'{type(error).__name__} ("{text}")' if text else type(error).__name__


#: What an error from PyTorch or pandas inside the student's code usually means in these exercises.
_ERROR_ADVICE: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"Dimension out of range"),
     lambda match: " Name the class dimension as dim=-1, the last one: it is the class dimension whether the "
                   "scores have shape (classes,) or (batch, classes)."),
    (re.compile(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)"),
     lambda match: f" A linear layer received {match[2]} features per row but was built with "
                   f"in_features={match[3]}: its in_features must be what the layer before it hands on."),
    (re.compile(r"expected input\[.*\] to have (\d+) channels, but got (\d+) channels"),
     lambda match: f" A convolution received {match[2]} channels but was built with in_channels={match[1]}: "
                   "each layer's in_channels must be what the layer before it makes."),
    (re.compile(r"Can't call numpy\(\) on Tensor that requires grad"),
     lambda match: " Compute it without gradients: inside `with torch.no_grad():` (or .detach() it first)."),
    (re.compile(r"Data must be 1-dimensional|Length of values \(1\) does not match"),
     lambda match: " The model's output for one image is a batch of one row, shape (1, classes): take that row "
                   "([0]) before making the Series."),
    (re.compile(r"Expected more than 1 value per channel when training"),
     lambda match: " Batch norm in training mode needs more than one image: switch the model to eval mode "
                   "(model.eval()) before predicting."),
)


def _advice_for(error: BaseException) -> str:
    for pattern, advice in _ERROR_ADVICE:
        match = pattern.search(str(error))
        if match:
            return advice(match)
    return ""


def _is_stub(error: BaseException) -> bool:
    """Whether ``error`` is an unsolved exercise's stub, ``NotImplementedError("Exercise N: ...")``."""
    return isinstance(error, NotImplementedError) and str(error).startswith("Exercise ")


def _answer_raised(error: BaseException, who: str) -> NoReturn:
    _fail(f"{who} raised {_describe(error)}{_your_line(error)}.{_advice_for(error)}")


def _call_answer(function: Any, *arguments: Any, who: str = "Your function") -> Any:
    """Call the student's ``function``; an error it raises becomes one ❌ line naming its line of code.

    An unsolved exercise's stub (``NotImplementedError("Exercise N: ...")``) goes through unchanged, so the
    notebook shows the stub's own message.
    """
    if not callable(function):
        _fail(f"{who} is a {_type_name(function)}, not a function: pass the function itself, without calling it.")
    try:
        return function(*arguments)
    except ExerciseError:
        raise
    except Exception as error:
        if _is_stub(error):
            raise
        _answer_raised(error, who)


class _Forward(NamedTuple):
    """What one forward pass did: its output or error, the first layer that got an input it was not built
    for (its class and a sentence), and the names of the modules called, in order."""

    output: Any
    error: Exception | None
    mismatch: tuple[type, str] | None
    called: list[str]


def _attribute_path(prefix: str, name: str) -> str:
    """``model.features[0][1]`` for the module name ``features.0.1``."""
    text = prefix
    for part in name.split(".") if name else []:
        text += f"[{part}]" if part.isdigit() else f".{part}"
    return text


def _input_mismatch(module: nn.Module, where: str, inputs: tuple[Any, ...]) -> tuple[type, str] | None:
    """A sentence when ``module`` receives an input it was not built for, else None."""
    if not inputs or not isinstance(inputs[0], torch.Tensor):
        return None
    shape = tuple(inputs[0].shape)
    if isinstance(module, nn.Linear):
        if len(shape) > 2:
            return nn.Linear, (f"{where} (nn.Linear) receives a tensor of shape {shape}, not one row of "
                               "features per image: flatten it first (nn.Flatten())")
        if shape and shape[-1] != module.in_features:
            return nn.Linear, (f"{where} (nn.Linear) receives {shape[-1]} features per image but was built "
                               f"with in_features={module.in_features}")
    if isinstance(module, nn.Conv2d) and len(shape) in (3, 4) and shape[-3] != module.in_channels:
        return nn.Conv2d, (f"{where} (nn.Conv2d) receives {shape[-3]} channels but was built with "
                           f"in_channels={module.in_channels}")
    if isinstance(module, nn.BatchNorm2d) and len(shape) == 4 and shape[1] != module.num_features:
        return nn.BatchNorm2d, (f"{where} (nn.BatchNorm2d) receives {shape[1]} channels but was built for "
                                f"{module.num_features}")
    return None


def _forward(model: nn.Module, batch: torch.Tensor, prefix: str) -> _Forward:
    """Run ``model`` on ``batch`` (eval mode, no gradients), watching every module it calls."""
    names = {id(module): name for name, module in model.named_modules()}
    called: list[str] = []
    mismatches: list[tuple[type, str]] = []

    def before(module: nn.Module, inputs: tuple[Any, ...]) -> None:
        name = names.get(id(module), "")
        called.append(name)
        if not mismatches:
            mismatch = _input_mismatch(module, _attribute_path(prefix, name), inputs)
            if mismatch is not None:
                mismatches.append(mismatch)

    hooks = [module.register_forward_pre_hook(before) for module in model.modules()]
    try:
        return _Forward(_run(model, batch), None, None, called)
    except Exception as error:
        if _is_stub(error):
            raise
        return _Forward(None, error, mismatches[0] if mismatches else None, called)
    finally:
        for hook in hooks:
            hook.remove()


def _forward_failed(result: _Forward, what: str, advice: dict[type, str] | None = None) -> NoReturn:
    """One line for a failed forward pass: the layer that did not fit and what to do, else the error."""
    if result.mismatch is not None:
        kind, sentence = result.mismatch
        _fail(f"{what}: {sentence}.{(advice or {}).get(kind, '')}")
    assert result.error is not None
    _fail(f"{what}: {_describe(result.error)}{_your_line(result.error)}.{_advice_for(result.error)}")


def _was_called(name: str, called: Sequence[str]) -> bool:
    """Whether the module ``name`` (or one of its sub-modules) ran in a forward pass."""
    return any(entry == name or entry.startswith(name + ".") for entry in called)

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


def _layers(module: nn.Module, kind: type | tuple[type, ...]) -> list[nn.Module]:
    return [layer for layer in module.modules() if isinstance(layer, kind)]


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
    _expect_module(model, "model")
    parameters = list(model.parameters())
    trainable = [p for p in parameters if p.requires_grad]
    if trainable and getattr(model, "requires_grad", None) is False:
        _fail("model.requires_grad = False only sets a new attribute on the module; it freezes nothing. "
              "Set requires_grad = False on each parameter tensor (model.parameters() gives them all).")
    if trainable:
        _fail(f"{_count(trainable):,} of the model's {_count(parameters):,} parameters are still trainable: "
              "set parameter.requires_grad = False for every parameter in model.parameters().")
    _passed(f"All {_count(parameters):,} parameters are frozen; nothing would train yet.")


def check_head(model: nn.Module, num_classes: int) -> None:
    """Check that the model's ImageNet classifier was replaced by a head for ``num_classes`` classes.

    Which linear layers the model really uses is read from a forward pass. A linear layer with
    ``num_classes`` outputs that the forward never calls is what a wrong first try leaves behind (``model.fc
    = ...`` on an EfficientNet, whose head is ``model.classifier``): while the real head is not right, the
    check says where the head is; once it is right, the check deletes the unused layer and says so, so a
    right answer passes after a wrong one without restarting the kernel, and Restart & Run All needs no
    clean-up line.
    """
    _expect_module(model, "model")
    linear_names = {name for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    result = _forward(model, torch.randn(1, 3, 64, 64), "model")
    used = [name for name in result.called if name in linear_names]
    unused = [name for name, module in model.named_children()
              if isinstance(module, nn.Linear) and module.out_features == num_classes and name not in used]
    removed = ""
    works = (result.error is None and isinstance(result.output, torch.Tensor)
             and tuple(result.output.shape) == (1, num_classes))
    if unused and used:
        if getattr(model.get_submodule(used[-1]), "out_features", None) != num_classes:
            _fail(f"You set model.{unused[0]}, but this {type(model).__name__} never uses it: its forward ends "
                  f"in model.{used[-1]}. Put the new layer there (models.find_head(model) tells where the head "
                  f"is); once it is there, this check removes the unused model.{unused[0]} for you.")
    if unused and used and works:
        for name in unused:
            delattr(model, name)
        removed = (f" (removed model.{', model.'.join(unused)}, an unused layer left by an earlier try; the "
                   "model never called it)")
    path, head = _find_head(model)
    outputs = getattr(head, "out_features", None)
    if outputs == 1000 and num_classes != 1000:
        _fail(f"The head was not replaced: model.{path} still outputs the 1000 ImageNet classes. Replace it "
              f"with a new layer with {num_classes} outputs.")
    if outputs != num_classes:
        _fail(f"The head outputs {outputs} classes, but the data set has {num_classes}: use "
              f"out_features={num_classes} in the last nn.Linear.")
    if result.error is not None:
        if result.mismatch is not None and result.mismatch[0] is nn.Linear:
            features = re.search(r"receives (\d+) features", result.mismatch[1])
            if features:
                _fail(f"The backbone hands {features[1]} features to the head, but the head was built for "
                      f"{getattr(head, 'in_features', '?')}: keep the old layer's in_features "
                      "(imagenet_head.in_features).")
        _forward_failed(result, "The model fails on a small test batch")
    output = result.output
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != (1, num_classes):
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else _type_name(output)
        _fail(f"The model's output has shape {shape}, expected (batch, {num_classes}).")
    in_features = getattr(head, "in_features", "?")
    _passed(f"New head at model.{path}: {in_features} features in, {num_classes} classes out{removed}.")


def check_frozen(model: nn.Module) -> None:
    """Check that the backbone is frozen and the head is not."""
    _expect_module(model, "model")
    head, body = _split_parameters(model)
    trainable_body = [p for p in body if p.requires_grad]
    if trainable_body:
        _fail(f"The backbone is not frozen: {_count(trainable_body):,} of its {_count(body):,} parameters "
              "are still trainable. Set requires_grad = False on every parameter, then replace the head "
              "(a new layer trains).")
    if not any(p.requires_grad for p in head):
        _fail("The head is frozen too, so nothing would learn: freeze the backbone first and replace the "
              "head afterwards (new layers are trainable), or set requires_grad = True on the head's "
              "parameters.")
    trainable = _count([p for p in head if p.requires_grad])
    _passed(f"Backbone frozen: only the head's {trainable:,} of {_count(head) + _count(body):,} parameters "
            "will train.")


#: Relative difference (of the vector's length) under which two feature rows count as the same image's.
_SAME_FEATURES = 0.05


def check_features(features: Any, labels: Any, samples: Sequence[Any], feature_dim: int, *,
                   extractor: nn.Module | None = None, transform: Callable | None = None, rows: int = 8) -> None:
    """Check the features of ``samples``: one row per image, ``feature_dim`` columns, labels in order.

    With ``extractor`` (the frozen backbone with an ``nn.Identity`` head) and ``transform`` (the eval
    transform), ``rows`` images spread over ``samples`` are run through both again and compared with their
    rows. This is how the check tells features computed through a random, augmenting transform (every row
    differs from its recomputation) and rows that belong to other images (a row matches another image's
    recomputation): labels alone cannot show either. The recomputation takes a few images only; float16 on
    a GPU moves features by far less than the tolerance of 5% of a row's length.
    """
    if not isinstance(features, torch.Tensor) or features.dim() != 2:
        shape = tuple(features.shape) if hasattr(features, "shape") else _type_name(features)
        _fail(f"Expected a 2-D tensor of features (images, {feature_dim}), got {shape}.")
    if features.shape[1] != feature_dim:
        _fail(f"Each image has {features.shape[1]} values, but the backbone gives {feature_dim} features: "
              "run models.feature_extractor(model), whose head is nn.Identity; the model itself gives "
              "class scores.")
    if not hasattr(labels, "__len__"):
        _fail(f"The labels are a {_type_name(labels)}; return them with the features, one label per image.")
    if len(features) != len(samples) or len(labels) != len(samples):
        _fail(f"{len(features)} feature rows and {len(labels)} labels for {len(samples)} images: run the "
              "backbone over every image of the split exactly once (drop_last must stay False).")
    expected = torch.as_tensor([int(sample[1]) for sample in samples])
    if not torch.equal(torch.as_tensor(labels).long().cpu(), expected):
        _fail("The labels are not in the order of the samples: build the loader with shuffle=False, so "
              "that row i of the features belongs to image i.")
    if not torch.isfinite(features).all():
        _fail("The features contain NaN or infinite values.")
    checked = ""
    if extractor is not None and transform is not None and len(samples):
        picked = _compare_with_recomputed(features, samples, extractor, transform, rows)
        checked = f"; {picked} of them recomputed through the eval transform agree"
    _passed(f"{len(features)} images, {feature_dim} features each, labels in sample order{checked}.")


def _compare_with_recomputed(features: torch.Tensor, samples: Sequence[Any], extractor: nn.Module,
                             transform: Callable, rows: int) -> int:
    """Recompute ``rows`` images' features and compare them with their rows; return how many were checked."""
    last = len(samples) - 1
    picked = sorted({round(step * last / max(rows - 1, 1)) for step in range(min(rows, len(samples)))})
    images = torch.stack([transform(load_rgb(Path(samples[index][0]))) for index in picked])
    reference = next(extractor.parameters(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    with evaluating(extractor), run_autocast(device):
        recomputed = extractor(images.to(device)).flatten(1).float().cpu()
    given = features.detach().float().cpu()
    for position, index in enumerate(picked):
        wanted = recomputed[position]
        scale = float(wanted.norm().clamp_min(1e-6))
        difference = float((given[index] - wanted).norm()) / scale
        if difference <= _SAME_FEATURES:
            continue
        distances = (given - wanted).norm(dim=1) / scale
        other = int(distances.argmin())
        if float(distances[other]) <= _SAME_FEATURES:
            _fail(f"Row {index} of the features belongs to image {other}, not to image {index}, although the labels "
                  "are in order: the rows come from another order of the images (a loader with shuffle=True, or "
                  "features stored by such a try). Compute them with shuffle=False, so row i is image i.")
        _fail(f"Row {index} of the features is not what the frozen backbone gives for image {index} through the "
              f"eval transform (they differ by {difference:.0%}). Use the eval transform, nothing random: a random "
              "crop or colour change would be frozen into the cached features, the same variant every epoch.")
    return len(picked)

# ----------------------------------------------------------------------------------------------------------
# Lesson 3: unfreezing, two learning rates, predicting one image
# ----------------------------------------------------------------------------------------------------------


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


def check_optimizer_groups(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    """Check an optimizer for fine-tuning: only trainable parameters, the whole head, a smaller body lr.

    A parameter in two groups never reaches this check: PyTorch refuses it when the optimizer is built.
    In IPython that error is shown as one line too (see :func:`_show_library_errors_briefly`).
    """
    _expect_module(model, "The model")
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

# ----------------------------------------------------------------------------------------------------------
# Lesson 4: the unknown class, class weights, probabilities and a threshold
# ----------------------------------------------------------------------------------------------------------


def check_unknown_layout(
    classes: Sequence[str], known: Sequence[str], unknown_name: str = UNKNOWN_CLASS
) -> None:
    """Check the class list of the "known classes + unknown" layout of lesson 4."""
    if classes is None or isinstance(classes, str) or not hasattr(classes, "__iter__"):
        _fail(f"The classes are a {_type_name(classes)}; expected a list of class names.")
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


def _expect_split(split: Any, what: str) -> None:
    missing = [name for name in ("train", "val", "test") if not hasattr(split, name)]
    if missing:
        _fail(f"{what} is a {_type_name(split)}, not a split with train, val and test parts (splits.Split).")


def check_split_has_no_leak(split: Any) -> None:
    """Check that no group (a sign's track) appears in more than one of train, val and test."""
    _expect_split(split, "The split")
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
    _expect_split(split, "The new split")
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

    ``counts[i]`` is the number of training images of ``classes[i]``; the weights must be a float tensor
    (what ``nn.CrossEntropyLoss(weight=...)`` takes), one positive number per class, with ``weight * count``
    the same for every class, scaled as scikit-learn's "balanced" weights: a balanced data set gets weight 1.

    The scale does not change the loss: with its default mean reduction, ``nn.CrossEntropyLoss`` divides the
    weighted sum by the sum of the weights of the batch's labels, so a common factor cancels. A weight of
    1 for "its fair share" makes the printed weights readable, which is why the exercise asks for it.
    """
    if not isinstance(class_weights, torch.Tensor):
        _fail(f"class_weights is a {_type_name(class_weights)}; nn.CrossEntropyLoss(weight=...) takes a float "
              "tensor, and the next cells use tensor methods on it: compute the weights from the counts tensor.")
    if not class_weights.is_floating_point():
        _fail(f"class_weights holds {class_weights.dtype} numbers; the loss needs floats: divide with /, not //.")
    weights = to_numpy(class_weights).astype(float).ravel()
    numbers = to_numpy(counts).astype(float).ravel()
    if weights.shape != (len(classes),):
        _fail(f"Expected one weight per class ({len(classes)}), got shape {tuple(class_weights.shape)}.")
    if not np.isfinite(weights).all() or (weights <= 0).any():
        _fail("Every weight must be a positive finite number; a class without images would get an "
              "infinite weight.")
    products = weights * numbers
    if not np.allclose(products, products[0], rtol=1e-3):
        largest, smallest = classes[int(numbers.argmax())], classes[int(numbers.argmin())]
        if weights[int(numbers.argmax())] >= weights[int(numbers.argmin())]:
            _fail(f"The largest class ({largest!r}) gets at least the weight of the smallest ({smallest!r}): "
                  "the weight must shrink as the count grows.")
        _fail("weight * count differs between classes: make each weight inversely proportional to its "
              "class's count, so that every class adds the same total weight to the loss.")
    factor = float(products[0]) / (float(numbers.sum()) / len(numbers))
    if not math.isclose(factor, 1.0, rel_tol=1e-3):
        _fail(f"The ratios between the weights are right, and the loss would be the same: with its default mean "
              "reduction nn.CrossEntropyLoss divides by the summed weights of the batch's labels, so a common "
              f"factor cancels. But these weights are {factor:.3g} times the asked ones: the exercise scales them "
              "so that a balanced data set gets weight 1 everywhere (scikit-learn's 'balanced' weights), which "
              "makes them readable: above 1 a class counts more than its share of the images, below 1 less.")
    _passed(f"Weights from {weights.min():.2f} ({classes[int(weights.argmin())]!r}, the largest class) to "
            f"{weights.max():.2f}: every class adds the same total weight to the loss.")


def check_probabilities(probabilities: Any) -> None:
    """Check class probabilities: one row per image, every value in [0, 1], every row summing to 1.

    A tensor that still requires gradients is refused: probabilities for scoring are computed without them.
    """
    if probabilities is None:
        _fail("The probabilities are None: assign the softmax's result to the variable.")
    if isinstance(probabilities, torch.Tensor) and probabilities.requires_grad:
        rows = len(probabilities) if probabilities.dim() else 1
        _fail(f"The probabilities were computed with gradients on (requires_grad=True): PyTorch keeps the "
              f"computation graph of all {rows} rows for a backward pass that never comes, and "
              "NumPy refuses such a tensor. Compute them inside `with torch.no_grad():` (or .detach() them).")
    try:
        values = to_numpy(probabilities).astype(float)
    except (TypeError, ValueError, RuntimeError) as error:
        _fail(f"Expected a tensor or an array of probabilities, got a {_type_name(probabilities)} that NumPy "
              f"cannot read: {_describe(error)}.")
    if values.ndim != 2:
        _fail(f"Expected one row per image and one column per class (2-D), got shape {values.shape}.")
    if values.size == 0:
        _fail("The probabilities are empty: compute them for the images.")
    if values.min() < 0 or values.max() > 1:
        _fail(f"Values range from {values.min():.3g} to {values.max():.3g}, outside [0, 1]: these look like "
              "logits; turn them into probabilities with a softmax over the class dimension (dim=1, the last).")
    rows = values.sum(axis=1)
    if not np.allclose(rows, 1, atol=1e-4):
        if values.shape[0] > 1 and np.allclose(values.sum(axis=0), 1, atol=1e-4):
            _fail("The columns sum to 1 instead of the rows: the softmax ran over the batch; use dim=1.")
        _fail(f"Rows sum to values between {rows.min():.3g} and {rows.max():.3g}, not 1: use softmax over "
              "the classes (dim=1), not a sigmoid per class.")
    _passed(f"{values.shape[0]} rows of probabilities over {values.shape[1]} classes, each summing to 1.")


def _max_softmax(head: nn.Module, features: Any) -> np.ndarray:
    """The maximum softmax probability of ``head`` on each row of ``features``."""
    logits = _run(head, torch.as_tensor(features))
    return torch.softmax(logits.float(), dim=-1).max(dim=-1).values.cpu().numpy().astype(float)


def check_threshold(threshold: Any, known_scores: Any, keep: float, *, head: nn.Module | None = None,
                    validation_features: Any = None, test_features: Any = None) -> None:
    """Check a threshold on confidence scores that keeps about ``keep`` of the known-class images.

    Given only the scores, the check can tell a threshold that keeps the wrong share, not where the
    scores came from. With ``head`` and ``validation_features`` it recomputes the validation images'
    maximum softmax probabilities itself: ``known_scores`` must be those, and the threshold must keep the
    same validation images as ``evaluation.threshold_keeping`` (one image more or fewer, for a quantile that
    interpolates). With ``test_features`` too, a threshold equal to a test image's score (and to no
    validation score) is refused: it was computed on the test images, which must not choose it.
    """
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        shape = tuple(threshold.shape) if hasattr(threshold, "shape") else _type_name(threshold)
        _fail(f"The threshold is a {shape}; it must be one number (a float).")
    try:
        scores = to_numpy(known_scores).astype(float).ravel()
    except (TypeError, ValueError) as error:
        _fail(f"The scores are a {_type_name(known_scores)} that NumPy cannot read: {_describe(error)}.")
    if scores.size == 0:
        _fail("There are no scores: compute one score per known-class validation image.")
    if (head is None) != (validation_features is None):
        raise TypeError("check_threshold needs head= and validation_features= together.")
    exact = head is not None
    if exact:
        reference = _max_softmax(head, validation_features)
        if len(scores) != len(reference):
            _fail(f"There are {len(scores)} scores, but {len(reference)} validation images: compute one score per "
                  "validation image, from the validation features only (never from the test images).")
        if not np.allclose(scores, reference, atol=1e-4):
            largest = float(np.abs(scores - reference).max())
            _fail(f"The scores differ from the maximum softmax probabilities of the head on the validation "
                  f"features (by up to {largest:.3g}): compute the probabilities from the validation features, "
                  "then take each row's maximum.")
    if math.isnan(value):
        _fail("The threshold is NaN: compute it from the known-class scores.")
    if scores.min() >= 0 and scores.max() <= 1 and not 0 <= value <= 1:
        _fail(f"The threshold {value:.3g} lies outside [0, 1], where the scores are.")
    if exact and test_features is not None:
        test_scores = _max_softmax(head, test_features)
        if np.isclose(test_scores, value, rtol=0, atol=1e-6).any() and \
                not np.isclose(scores, value, rtol=0, atol=1e-6).any():
            _fail(f"The threshold {value:.4g} is the score of a test image, not of a validation image: it was "
                  "computed on the test images. Choose it on the validation scores only: a threshold picked on "
                  "the test set makes the test result look better than it will be on new images.")
    kept = float((scores >= value).mean())
    if exact:
        from course_utils.evaluation import threshold_keeping

        wanted = int((scores >= threshold_keeping(scores, keep)).sum())
        right = abs(int((scores >= value).sum()) - wanted) <= 1
        tolerance = 1.5 / len(scores)
    else:
        tolerance = 1 / len(scores) + 0.01
        right = abs(kept - keep) <= tolerance
    if not right:
        hint = (" It keeps the share that should be rejected: take the score below which only (1 - keep) of the "
                "known images fall." if abs(kept - (1 - keep)) <= max(tolerance, 0.02) else "")
        source = " Compute it from the validation scores, never from test images." if exact else ""
        _fail(f"The threshold {value:.3g} keeps {kept:.1%} of the known-class images, but should keep "
              f"{keep:.1%}.{hint}{source}")
    _passed(f"Threshold {value:.3f} keeps {kept:.1%} of known-class images.")

# ----------------------------------------------------------------------------------------------------------
# Lesson 5: your own images
# ----------------------------------------------------------------------------------------------------------


def _class_names(answer: Any, classes: Sequence[str], what: str) -> list[str]:
    """``answer`` as a sorted list of class names, or one ❌ line saying what it is instead."""
    if answer is None:
        _fail(f"{what} is None: did you forget `return` (or to assign the list)?")
    if isinstance(answer, str) or not hasattr(answer, "__iter__"):
        _fail(f"{what} is a {_type_name(answer)}; expected a list of class names, e.g. {list(classes)[:2]}.")
    names = list(answer)
    numbers = [name for name in names if isinstance(name, (int, np.integer)) and not isinstance(name, bool)]
    if numbers:
        _fail(f"{what} holds class indices ({numbers[:3]}); give the class names: classes[index].")
    return sorted(str(name) for name in names)


def check_rare_classes(too_small: Any, samples: Sequence[Any], classes: Sequence[str], min_count: int) -> None:
    """Check the classes with fewer than ``min_count`` images (lesson 5, Exercise 1).

    ``too_small`` is the sorted list of their names, or a function ``(samples, classes, min_count) -> list``
    that makes it. A list can only be judged on this data: when no class has exactly ``min_count`` images,
    "fewer than" (<) and "at most" (<=) give the same list. A function is also tried on a small made-up data
    set with a class of exactly ``min_count`` images, which tells them apart whatever the real counts are.
    """
    counts = {name: 0 for name in classes}
    for sample in samples:
        counts[classes[sample.label]] += 1
    expected = sorted(name for name, count in counts.items() if count < min_count)
    boundary = sorted(name for name, count in counts.items() if count == min_count)
    if callable(too_small):
        _try_rare_classes_on_a_toy(too_small, min_count)
        answer = _class_names(_call_answer(too_small, samples, classes, min_count), classes, "Your function's answer")
    else:
        answer = _class_names(too_small, classes, "too_small")
    if boundary and answer == sorted(expected + boundary):
        _fail(f"Your answer also lists {boundary}, with exactly {min_count} images: 'fewer than {min_count}' means "
              f"< {min_count}; a class with exactly {min_count} images stays.")
    if answer != expected:
        _fail(f"Expected the classes with fewer than {min_count} images, {expected}, got {answer}. Count the "
              "samples per class (sample.label is an index into classes).")
    _passed(f"{len(expected)} class(es) below {min_count} images: {', '.join(expected) or 'none'}.")


def _try_rare_classes_on_a_toy(function: Callable[..., Any], min_count: int) -> None:
    """Run the student's function on classes with ``min_count - 1``, ``min_count`` and ``min_count + 1`` images."""
    from course_utils.samples import Sample

    toy_classes = ["fewer", "exactly", "more"]
    sizes = [max(min_count - 1, 0), min_count, min_count + 1]
    toy = [Sample(Path(f"{name}/{index}.png"), label, f"{name}/{index}")
           for label, (name, size) in enumerate(zip(toy_classes, sizes, strict=True)) for index in range(size)]
    answer = _class_names(_call_answer(function, toy, toy_classes, min_count), toy_classes, "Your function's answer")
    if "exactly" in answer:
        _fail(f"On a small made-up folder your function also drops a class with exactly {min_count} images: "
              f"'fewer than {min_count}' means < {min_count}; a class with exactly {min_count} images stays.")
    if answer != ["fewer"]:
        _fail(f"On a small made-up folder with classes of {sizes[0]}, {sizes[1]} and {sizes[2]} images your function "
              f"returns {answer}; only the class with {sizes[0]} images has fewer than {min_count}.")


def check_mlp_head(head: nn.Module, in_features: int, hidden_units: int, num_classes: int) -> None:
    """Check a head with one hidden layer: in_features -> hidden_units -> ReLU -> num_classes (lesson 5)."""
    _expect_module(head, "The head")
    if _layers(head, (nn.Conv2d, nn.BatchNorm2d)):
        _fail("This is the whole model (it has convolutions and batch norms), not its head: pass only the head, "
              "the module that models.find_head returns for the model (its second value).")
    linears = [module for module in head.modules() if isinstance(module, nn.Linear)]
    shapes = [(module.in_features, module.out_features) for module in linears]
    if shapes != [(in_features, hidden_units), (hidden_units, num_classes)]:
        _fail(f"Expected two linear layers {in_features}->{hidden_units}->{num_classes}, got {shapes}: the head "
              f"needs one hidden layer of {hidden_units} units (replace_head's hidden_units takes one number per "
              "hidden layer).")
    if not any(isinstance(module, nn.ReLU) for module in head.modules()):
        _fail("The hidden layer needs a non-linearity (ReLU), or the two layers act as a single linear one.")
    if not all(parameter.requires_grad for parameter in head.parameters()):
        _fail("The new head must be trainable (requires_grad=True).")
    trainable = sum(parameter.numel() for parameter in head.parameters())
    _passed(f"MLP head {in_features} -> {hidden_units} -> {num_classes}: {trainable:,} trainable parameters.")

# ----------------------------------------------------------------------------------------------------------
# Errors that PyTorch raises in an exercise cell before any check runs, shown as one line in IPython
# ----------------------------------------------------------------------------------------------------------


#: A fragment of PyTorch's message -> (the check of the exercise where it happens, what it means there).
_LIBRARY_ERRORS: dict[str, tuple[str, str]] = {
    "some parameters appear in more than one parameter group": (
        "check_optimizer_groups",
        "The same parameters are in two of the optimizer's groups, which PyTorch refuses (\"some parameters "
        "appear in more than one parameter group\"). Each parameter belongs to one group: the head's "
        "parameters to the head's group only, and the body's group holds the trainable parameters that are "
        "not the head's."),
}
_INSTALLED_HANDLERS: dict[int, Any] = {}  # id(shell) -> the CustomTB this module installed there


def _library_error_line(error: BaseException, lesson: Any) -> str | None:
    """The ❌ line for a known PyTorch error, or None for any other error."""
    if not isinstance(error, ValueError):
        return None
    for fragment, (check_name, message) in _LIBRARY_ERRORS.items():
        if fragment in str(error):
            number = _exercise_for_check(lesson, check_name)
            pointer = f" (Stuck? checks.hint({number}) gives a hint.)" if number else ""
            return f"❌ {message}{pointer}"
    return None


def _show_library_errors_briefly(shell: Any = None) -> bool:
    """In IPython, show the errors of :data:`_LIBRARY_ERRORS` as one ❌ line instead of a long traceback.

    IPython keeps one custom handler; this one takes over the exceptions of the handler already installed
    (``environment.start_lesson``'s for the exercise stubs) and passes them on to it. Every check calls this
    again, so the handler is back after something else replaced it. Returns whether it is installed.
    """
    if shell is None:
        if "IPython" not in sys.modules:
            return False
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            return False
    if _INSTALLED_HANDLERS.get(id(shell)) is getattr(shell, "CustomTB", None):
        return True
    previous_types = tuple(shell.custom_exceptions)
    previous = shell.CustomTB

    def handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> list[str]:
        line = _library_error_line(value, shell.user_ns.get("LESSON"))
        if line is not None:
            shell._showtraceback(etype, value, [line])  # the cell still fails: Run All stops here
            return [line]
        if previous_types and isinstance(value, previous_types):
            return previous(etype, value, tb, tb_offset)
        stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
        shell._showtraceback(etype, value, stb)
        return stb

    shell.set_custom_exc(tuple(dict.fromkeys((*previous_types, ValueError))), handler)
    _INSTALLED_HANDLERS[id(shell)] = shell.CustomTB
    return True

# ----------------------------------------------------------------------------------------------------------
# Hints in layers: checks.hint(N) and checks.solution(N)
# ----------------------------------------------------------------------------------------------------------


class _Exercise(NamedTuple):
    """An exercise's self-checks (by function name) and its hint: the way to the answer, not the answer."""

    checks: tuple[str, ...]
    hint: str


#: The exercises of each lesson by number, as in ``# Exercise N: <title>`` of ``solutions/<lesson>.ipynb``. The
#: titles and the answers are read from those notebooks, not copied here; a test keeps both in step.
_EXERCISES: dict[str, dict[int, _Exercise]] = {
    "01_cnn_from_scratch": {
        1: _Exercise(("check_train_siblings",),
                     "A test image has a sibling when its group (its track: the frames of one physical sign) also "
                     "occurs among the training images. Collect the training groups in a set first, then count "
                     "the test images whose group is in it: images, not tracks, and without split.val."),
        2: _Exercise(("check_padding",),
                     "A k x k kernel at stride 1 trims k - 1 pixels off each dimension; put half of them back on "
                     "each side. With dilation d the kernel's taps are d pixels apart, so it covers d * (k - 1) + 1 "
                     "pixels. The answer must be a whole number: integer division."),
        3: _Exercise(("check_conv_block",),
                     "Four layers in one nn.Sequential, in this order: a convolution from in_channels to "
                     "out_channels with the size-keeping padding of Exercise 2 and no bias (the batch norm after "
                     "it has its own shift), a batch norm over out_channels, a ReLU, and a 2x2 max-pool."),
        4: _Exercise(("check_cnn",),
                     "In __init__, create the layers under the names later cells use: self.features (the blocks "
                     "in an nn.Sequential, each block's in_channels the previous block's out_channels, 3 for the "
                     "first), self.pool (global average pooling to 1x1), self.flatten, self.dropout and "
                     "self.classifier (a linear layer from the last block's channels to num_classes). forward "
                     "calls them in that order and returns the raw scores, no softmax."),
        5: _Exercise(("check_training_step",),
                     "One step is: clear the old gradients, run the model on the images, compute the loss from the "
                     "outputs and the labels, backpropagate it, let the optimizer update the weights. Return the "
                     "loss as a Python number."),
    },
    "02_feature_extraction": {
        1: _Exercise(("check_all_frozen",),
                     "Freezing is a flag on every parameter tensor: go through model.parameters() and switch "
                     "requires_grad off on each. An attribute on the model itself freezes nothing."),
        2: _Exercise(("check_head", "check_frozen"),
                     "head_name says where the classifier sits (fc in a ResNet, classifier in an EfficientNet). "
                     "Put a new nn.Linear under that name (setattr sets an attribute whose name is in a "
                     "variable), with the old layer's number of inputs and num_classes outputs. A new layer is "
                     "trainable, so the frozen body stays frozen."),
        3: _Exercise(("check_features",),
                     "The text above the exercise lists the three calls: a loader over the samples with the eval "
                     "transform and shuffle=False, a cache key from features.feature_cache_key with the same "
                     "transform, and features.compute_features with the extractor, the loader, the cache folder "
                     "and that key."),
    },
    "03_fine_tuning": {
        1: _Exercise(("check_unfrozen_last_blocks",),
                     "A copied model trains everything. Freeze every parameter first; then switch requires_grad "
                     "back on for the parameters of the last LAST_BLOCKS entries of models.body_blocks(fine_model) "
                     "(a negative slice) and for the head's (models.find_head gives the head module)."),
        2: _Exercise(("check_optimizer_groups",),
                     "One optimizer, two groups, each a dict with \"params\" and \"lr\". The head's group holds "
                     "the head's parameters at HEAD_LR; the body's group the trainable parameters that are not the "
                     "head's, at BODY_LR. Compare parameters by id() to leave the head's out of the body's group: "
                     "no parameter may be in both, and frozen ones are in neither."),
        3: _Exercise(("check_prediction_function",),
                     "Load the file with image_files.load_rgb, apply the transform and add a batch dimension. Put "
                     "the model in eval mode and run it without gradients, on the model's device. A softmax over "
                     "the class dimension (the last) gives probabilities; a pandas Series indexed by the class "
                     "names, sorted from highest to lowest, holds them."),
    },
    "04_unknown_class": {
        1: _Exercise(("check_unknown_layout", "check_split_has_no_leak", "check_held_out_types"),
                     "Work part by part through split_all.parts(). In train and val, drop the samples whose sign "
                     "type is held out (the test keeps them). splits.with_unknown_class relabels a part and returns "
                     "the samples and the new class list; splits.Split puts the three parts together."),
        2: _Exercise(("check_head", "check_frozen"),
                     "As in lesson 2, in three steps: copy the backbone (copy.deepcopy) so the original stays as it "
                     "is, give the copy a new head for all the classes of unknown_split, freeze everything but the "
                     "head; then move it to env.device. models has a function for each step."),
        3: _Exercise(("check_class_weights",),
                     "Work on the whole counts tensor at once, no loop: each class's weight is the total number of "
                     "training images divided by (the number of classes times that class's count). A balanced "
                     "data set then gets 1 everywhere."),
        4: _Exercise(("check_probabilities", "check_threshold"),
                     "Three steps: the softmax over the classes of head4's output on val_x, computed without "
                     "gradients; each row's maximum with evaluation.max_softmax_scores; the threshold with "
                     "evaluation.threshold_keeping and keep=KEEP_KNOWN. Validation features only: the test images "
                     "must not choose the threshold."),
    },
    "05_your_own_images": {
        1: _Exercise(("check_rare_classes",),
                     "Count the images of each class name (a collections.Counter over classes[sample.label] "
                     "for each sample), then keep the names whose count is strictly below the minimum: a class "
                     "with exactly that many images stays. Sort the list."),
        2: _Exercise(("check_mlp_head",),
                     "models.replace_head builds a head with hidden layers when you give it hidden_units (one "
                     "number per hidden layer) and a dropout rate; it changes mlp_model in place. "
                     "models.find_head then returns the head's name and module: keep the module."),
        3: _Exercise(("check_optimizer_groups",),
                     "fine_model trains everything. models.parameter_groups builds a head group and a body group "
                     "with their own learning rates; AdamW takes those groups. The head learns at 1e-3, the body "
                     "ten times slower."),
    },
}


def _exercise_for_check(lesson: Any, check_name: str) -> int | None:
    """The number of the exercise of ``lesson`` whose self-checks include ``check_name``, if exactly one."""
    exercises = _EXERCISES.get(lesson) if isinstance(lesson, str) else None
    numbers = [number for number, exercise in (exercises or {}).items() if check_name in exercise.checks]
    return numbers[0] if len(numbers) == 1 else None


def _hint_pointer() -> str:
    """`` (Stuck? checks.hint(3) gives a hint.)`` when the failing check belongs to an exercise of the lesson
    that called it (the notebook's ``LESSON`` variable), else an empty string."""
    frame = sys._getframe(1)
    check_name = None
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        if frame.f_code.co_name.startswith("check_"):
            check_name = frame.f_code.co_name
        frame = frame.f_back
    if frame is None or check_name is None:
        return ""
    number = _exercise_for_check(frame.f_globals.get("LESSON"), check_name)
    return f" (Stuck? checks.hint({number}) gives a hint.)" if number else ""


class _Written(NamedTuple):
    """What a solution notebook says about one exercise: its title, its reference line, where that line goes."""

    title: str
    reference: str | None
    inside_block: bool


_EXERCISE_LINE = re.compile(r"^\s*#\s*Exercise(?:\s+(?P<number>\d+))?\s*:\s*(?P<title>\S.*?)\s*$")
_REFERENCE_LINE = re.compile(r"^(?P<indent>[ \t]*)#\s*Reference:\s*(?P<line>\S.*?)\s*$")


def _solution_notebook(lesson: str) -> Path | None:
    """``solutions/<lesson>.ipynb`` of the course, where there is one: next to the package (a clone of the
    course), in the working folder or next to it (a notebook opened from ``notebooks/``)."""
    for folder in (Path(__file__).resolve().parents[1], Path.cwd(), Path.cwd().parent):
        path = folder / "solutions" / f"{lesson}.ipynb"
        if path.is_file():
            return path
    return None


def _written_exercises(lesson: str) -> tuple[Path | None, dict[int, _Written]]:
    """The exercises of ``solutions/<lesson>.ipynb`` by number (empty when it cannot be found or read)."""
    path = _solution_notebook(lesson)
    if path is None:
        return None, {}
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return path, {}
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    found: dict[int, _Written] = {}
    for cell in cells if isinstance(cells, list) else []:
        source = cell.get("source") if isinstance(cell, dict) and cell.get("cell_type") == "code" else None
        if isinstance(source, list) and all(isinstance(part, str) for part in source):
            source = "".join(source)
        for line in source.splitlines() if isinstance(source, str) else []:
            heading = _EXERCISE_LINE.match(line)
            if heading:
                found[len(found) + 1] = _Written(heading["title"], None, False)
                continue
            reference = _REFERENCE_LINE.match(line)
            if reference and found and found[len(found)].reference is None:
                found[len(found)] = found[len(found)]._replace(reference=reference["line"],
                                                               inside_block=bool(reference["indent"]))
    return path, found


def _lesson_name(lesson: Any) -> str:
    """``"01_cnn_from_scratch"`` for 1, "1", "01", "L1", "lesson 1" or the name itself."""
    digits = re.search(r"\d+", str(lesson))
    for name in _EXERCISES:
        if digits and name.startswith(f"{int(digits[0]):02d}_"):
            return name
    _fail(f"There is no lesson {lesson!r}: say its number, 1 to {len(_EXERCISES)}.", pointer=False)


def _find_exercise(exercise: Any, lesson: Any, caller_lesson: Any) -> tuple[str, int]:
    """The lesson and number of ``exercise`` (a number, "Exercise 3", or a part of its title)."""
    explicit = lesson is not None
    if lesson is None:
        lesson = caller_lesson
    text = str(exercise).strip()
    number_only = re.fullmatch(r"(?i)(?:ex(?:ercise)?\s*)?(\d+)", text)
    if isinstance(exercise, bool) or not (isinstance(exercise, int) or number_only or text):
        _fail(f"Name the exercise by its number, e.g. checks.hint(3), not {exercise!r}.", pointer=False)
    if isinstance(exercise, int) or number_only:
        if lesson is None:
            _fail("Which lesson? Outside a lesson notebook say it: checks.hint(3, lesson=1).", pointer=False)
        name, number = _lesson_name(lesson), int(exercise if isinstance(exercise, int) else number_only[1])
        if number not in _EXERCISES[name]:
            _fail(f"Lesson {int(name[:2])} has Exercises 1 to {max(_EXERCISES[name])}; there is no Exercise "
                  f"{number}.", pointer=False)
        return name, number
    def matching(lessons: list[str]) -> list[tuple[str, int]]:
        return [(name, number) for name in lessons for number, written in _written_exercises(name)[1].items()
                if text.lower() in written.title.lower() and number in _EXERCISES[name]]

    matches = matching([_lesson_name(lesson)] if lesson is not None else list(_EXERCISES))
    if not matches and not explicit and lesson is not None:  # a title of another lesson than the notebook's
        matches = matching(list(_EXERCISES))
    if len(matches) != 1:
        found = "several exercises" if matches else "no exercise"
        _fail(f"The title {text!r} matches {found}; name the exercise by its number: checks.hint(3).",
              pointer=False)
    return matches[0]


def _heading(lesson: str, number: int, written: dict[int, _Written]) -> str:
    title = f" ({written[number].title})" if number in written else ""
    return f"Lesson {int(lesson[:2])}, Exercise {number}{title}"


def hint(exercise: int | str, lesson: int | str | None = None) -> None:
    """Print a hint for an exercise: the way to the answer, without the answer.

    ``checks.hint(3)`` in a lesson notebook (the lesson comes from the notebook's ``LESSON`` variable);
    ``checks.hint(3, lesson=1)`` anywhere; or by a part of its title, ``checks.hint("Conv block")``.
    The answer itself: :func:`solution`.
    """
    name, number = _find_exercise(exercise, lesson, sys._getframe(1).f_globals.get("LESSON"))
    _, written = _written_exercises(name)
    print(f"💡 {_heading(name, number, written)}: {_EXERCISES[name][number].hint} "
          f"The answer itself: checks.solution({number}).")


def solution(exercise: int | str, lesson: int | str | None = None) -> None:
    """Print the answer to an exercise: the one line that takes the course package's answer, and where it goes.

    The line is read from the exercise's ``# Reference:`` comment in ``solutions/<lesson>.ipynb``; where that
    notebook is not at hand (Colab, Kaggle), this says where it is. Arguments as for :func:`hint`.
    """
    name, number = _find_exercise(exercise, lesson, sys._getframe(1).f_globals.get("LESSON"))
    path, written = _written_exercises(name)
    heading = _heading(name, number, written)
    entry = written.get(number)
    if path is not None and entry is not None and entry.reference:
        place = ("in place of the exercise's whole def/class block" if entry.inside_block
                 else "in place of your code in the exercise cell (where the stub's raise line was)")
        print(f"🔑 {heading}: the course package's answer, one line that goes {place}; the rest of the "
              f"notebook then runs:\n    {entry.reference}\nThe worked answer, step by step: {display_path(path)}, "
              f"the cell that starts with '# Exercise {number}'.")
        return
    print(f"🔑 {heading}: the answer is in the course's solutions/{name}.ipynb, in the cell that starts with "
          f"'# Exercise {number}', on its line '# Reference: ...'. The same line ends the message of the "
          "exercise's stub, the NotImplementedError the cell raised before you wrote your code.")
