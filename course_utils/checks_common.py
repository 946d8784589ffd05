"""What the self-checks of every lesson share: the ✅ and ❌ lines, and one line for an error that the student's
own code raised while a check ran it (with the line of their code where it happened).

The checks themselves are in ``checks_lesson1`` to ``checks_lesson5``; students call them through
:mod:`course_utils.checks`.
"""

from __future__ import annotations

import linecache
import os
import re
import site
import sysconfig
from collections.abc import Callable, Sequence
from pathlib import Path
from traceback import walk_tb
from typing import Any, NamedTuple, NoReturn

import torch
from torch import nn

from course_utils import messages
from course_utils.devices import evaluating
from course_utils.hints import _hint_pointer, _show_library_errors_briefly
from course_utils.ipython_errors import ExerciseError
from course_utils.models import find_head, head_parameters

__all__ = ["ExerciseError"]  # the helpers below are for the checks_lesson modules


def _passed(message: str) -> None:
    _show_library_errors_briefly()
    messages.say(f"✅ {message}")


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
# The parts of a model that several lessons' checks look at
# ----------------------------------------------------------------------------------------------------------


def _layers(module: nn.Module, kind: type | tuple[type, ...]) -> list[nn.Module]:
    return [layer for layer in module.modules() if isinstance(layer, kind)]


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
