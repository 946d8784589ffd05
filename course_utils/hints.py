"""Hints in layers: ``checks.hint(N)`` and ``checks.solution(N)``, and the exercises they know.

As in Kaggle Learn's exercises, the first message of a failed self-check says what is wrong, not the answer,
and ends with a pointer to the hint (:func:`_hint_pointer`). ``checks.hint(3)`` prints a hint for Exercise 3
of the lesson you are in: the way to the answer, without it. ``checks.solution(3)`` prints the answer (the one
line that takes the course package's answer) and where the worked answer is.

The registry :data:`_EXERCISES` names each lesson's exercises, their self-checks and their hints; titles and
answers are read from ``solutions/<lesson>.ipynb``, not copied here. A written exercise (predict, then measure)
has no self-check: its answer is the reasoned prediction in the markdown cell above the code cell that carries
its ``# Exercise N: <title>`` comment and measures it, and ``checks.solution(N)`` prints that. A few PyTorch
errors that an exercise cell raises before any check runs get one ❌ line with the same pointer in IPython
(:data:`_LIBRARY_ERRORS`).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from course_utils import messages
from course_utils.files import display_path
from course_utils.ipython_errors import ExerciseError, current_shell, show_in_one_line
from course_utils.solution_markers import EXERCISE_LINE, REFERENCE_LINE, lines_in_solution_regions

__all__ = ["hint", "solution"]

#: Frames of these modules (``checks`` and the ``checks_*`` modules) are the self-checks' own: the hint pointer
#: looks past them for the notebook that called a check.
_CHECK_MODULES = "course_utils.checks"


class _Exercise(NamedTuple):
    """An exercise's self-checks (by function name) and its hint: the way to the answer, not the answer.

    A written exercise (a prediction in a markdown cell) has no self-checks: ``checks=()``.
    """

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
        6: _Exercise((),
                     "Start from what augmentation changes: without it the CNN sees the very same pictures in "
                     "every epoch instead of new variants of them. Which of the two is easier to fit, and does "
                     "fitting those few hundred pictures better say anything about signs it has never seen? The "
                     "history's reading comes from the validation curve, not the training one. For the test "
                     "accuracy, look at how wide the lesson's earlier intervals were before you expect a verdict."),
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
        4: _Exercise((),
                     "Two things change with the image size. How large is a sign next to the filters the backbone "
                     "learned on ImageNet's photos? And how many positions does the last feature map keep for the "
                     "global pooling to average (the backbone shrinks its input 32-fold: work the grid out at both "
                     "sizes)? Then ask whether the test tracks can decide a difference of the size you expect: look "
                     "at how wide the lesson's other intervals are."),
    },
    "03_fine_tuning": {
        1: _Exercise(("check_unfrozen_last_blocks",),
                     "fine_model's body is frozen and its head trains: switch requires_grad on for the parameters of "
                     "the last LAST_BLOCKS entries of models.body_blocks(fine_model) (a negative slice) and keep the "
                     "head's on (models.find_head gives the head module)."),
        2: _Exercise(("check_optimizer_groups",),
                     "One optimizer, two groups, each a dict with \"params\" and \"lr\". The head's group holds "
                     "the head's parameters at HEAD_LR; the body's group the trainable parameters that are not the "
                     "head's, at BODY_LR. Compare parameters by id() to leave the head's out of the body's group: "
                     "no parameter may be in both, and frozen ones are in neither."),
        3: _Exercise((),
                     "Ask what the trained head learned from: features computed with every BatchNorm layer in "
                     "inference mode, normalised with ImageNet's running statistics. What does a BatchNorm layer in "
                     "training mode normalise with instead, and what does the head receive in the first batches, "
                     "before the body has changed at all? Say which part you can reason out (the direction) and "
                     "which only the run can tell (how large)."),
        4: _Exercise(("check_prediction_function",),
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
        5: _Exercise((),
                     "Keep the two numbers apart. The head's own decision is its top class: without weights, which "
                     "class has by far the most training images, how much of the loss do its images make, and which "
                     "way does that push the decisions on known and on unknown signs? The AUROC depends only on the "
                     "order of the test images by 1 - P(unknown): can a weight that all four known signs share "
                     "change that order, or only where the threshold falls?"),
    },
    "05_your_own_images": {
        1: _Exercise(("check_rare_classes",),
                     "Count the images of each class name (a collections.Counter over classes[sample.label] "
                     "for each sample in samples), then return the names whose count is strictly below min_count, "
                     "sorted. A class with exactly min_count images stays, and a name that never occurs counts 0: "
                     "go through classes, not through the counter."),
        2: _Exercise(("check_mlp_head",),
                     "models.replace_head builds a head with hidden layers when you give it hidden_units (one "
                     "number per hidden layer) and a dropout rate; it changes mlp_model in place. "
                     "models.find_head then returns the head's name and module: keep the module."),
        3: _Exercise(("check_optimizer_groups",),
                     "fine_model trains everything. models.parameter_groups builds a head group and a body group "
                     "with their own learning rates; AdamW takes those groups. The head learns at 1e-3, the body "
                     "ten times slower."),
        4: _Exercise((),
                     "Every head reads the same frozen features. What can a hidden layer add to them, and what can "
                     "it not? Count the parameters of a 2,048-unit hidden layer (the features' length is printed "
                     "above) against the number of training images, and remember which epoch of each head the "
                     "lesson keeps. Then look at how wide this run's interval for the MLP against the linear head "
                     "was before you predict that its verdict changes."),
    },
    "06_scaling_out": {},  # an appendix without exercises
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
    while frame is not None and str(frame.f_globals.get("__name__")).startswith(_CHECK_MODULES):
        if frame.f_code.co_name.startswith("check_"):
            check_name = frame.f_code.co_name
        frame = frame.f_back
    if frame is None or check_name is None:
        return ""
    number = _exercise_for_check(frame.f_globals.get("LESSON"), check_name)
    return f" (Stuck? checks.hint({number}) gives a hint.)" if number else ""


class _Written(NamedTuple):
    """What a solution notebook says about one exercise: its title, its reference line, where that line goes,
    and for a written exercise the answer in the markdown cells right above its code cell."""

    title: str
    reference: str | None
    inside_block: bool
    answer: str | None = None




def _cell_source(cell: Any) -> str | None:
    """The source of a notebook cell read from JSON, as one string (None when it is not text)."""
    source = cell.get("source") if isinstance(cell, dict) else None
    if isinstance(source, list) and all(isinstance(part, str) for part in source):
        source = "".join(source)
    return source if isinstance(source, str) else None


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
    written_above: list[str] = []  # the written answer in the markdown cells since the last code cell
    for cell in cells if isinstance(cells, list) else []:
        if not isinstance(cell, dict):
            continue
        source = _cell_source(cell)
        if cell.get("cell_type") == "markdown" and source is not None:
            written_above += lines_in_solution_regions(source)
            continue
        if cell.get("cell_type") != "code":
            continue
        answer = "\n".join(written_above).strip() or None
        written_above = []
        for line in source.splitlines() if isinstance(source, str) else []:
            heading = EXERCISE_LINE.match(line)
            if heading:
                found[len(found) + 1] = _Written(heading["title"], None, False, answer)
                answer = None
                continue
            reference = REFERENCE_LINE.match(line)
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
    _refuse(f"There is no lesson {lesson!r}: say its number, 1 to {len(_EXERCISES)}.")


def _find_exercise(exercise: Any, lesson: Any, caller_lesson: Any) -> tuple[str, int]:
    """The lesson and number of ``exercise`` (a number, "Exercise 3", or a part of its title)."""
    explicit = lesson is not None
    if lesson is None:
        lesson = caller_lesson
    text = str(exercise).strip()
    number_only = re.fullmatch(r"(?i)(?:ex(?:ercise)?\s*)?(\d+)", text)
    if isinstance(exercise, bool) or not (isinstance(exercise, int) or number_only or text):
        _refuse(f"Name the exercise by its number, e.g. checks.hint(3), not {exercise!r}.")
    if isinstance(exercise, int) or number_only:
        if lesson is None:
            _refuse("Which lesson? Outside a lesson notebook say it: checks.hint(3, lesson=1).")
        name, number = _lesson_name(lesson), int(exercise if isinstance(exercise, int) else number_only[1])
        if number not in _EXERCISES[name]:
            _refuse(f"Lesson {int(name[:2])} has Exercises 1 to {max(_EXERCISES[name])}; there is no Exercise "
                  f"{number}.")
        return name, number
    def matching(lessons: list[str]) -> list[tuple[str, int]]:
        return [(name, number) for name in lessons for number, written in _written_exercises(name)[1].items()
                if text.lower() in written.title.lower() and number in _EXERCISES[name]]

    matches = matching([_lesson_name(lesson)] if lesson is not None else list(_EXERCISES))
    if not matches and not explicit and lesson is not None:  # a title of another lesson than the notebook's
        matches = matching(list(_EXERCISES))
    if len(matches) != 1:
        found = "several exercises" if matches else "no exercise"
        _refuse(f"The title {text!r} matches {found}; name the exercise by its number: checks.hint(3).")
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
    messages.say(f"💡 {_heading(name, number, written)}: {_EXERCISES[name][number].hint} "
                 f"The answer itself: checks.solution({number}).")


def solution(exercise: int | str, lesson: int | str | None = None) -> None:
    """Print the answer to an exercise: the one line that takes the course package's answer, and where it goes.

    The line is read from the exercise's ``# Reference:`` comment in ``solutions/<lesson>.ipynb``; for a written
    exercise the answer is the reasoned prediction in the markdown cell above its code cell. Where that notebook
    is not at hand (Colab, Kaggle), this says where it is. Arguments as for :func:`hint`.
    """
    name, number = _find_exercise(exercise, lesson, sys._getframe(1).f_globals.get("LESSON"))
    path, written = _written_exercises(name)
    heading = _heading(name, number, written)
    entry = written.get(number)
    if not _EXERCISES[name][number].checks:
        _print_written_answer(name, number, heading, path, entry)
        return
    if path is not None and entry is not None and entry.reference:
        place = ("in place of the exercise's whole def/class block" if entry.inside_block
                 else "in place of your code in the exercise cell (where the stub's raise line was)")
        messages.say(
            f"🔑 {heading}: the course package's answer, one line that goes {place}; the rest of the "
            f"notebook then runs:\n    {entry.reference}\nThe worked answer, step by step: {display_path(path)}, "
            f"the cell that starts with '# Exercise {number}'.")
        return
    messages.say(f"🔑 {heading}: the answer is in the course's solutions/{name}.ipynb, in the cell that starts with "
                 f"'# Exercise {number}', on its line '# Reference: ...'. The same line ends the message of the "
                 "exercise's stub, the NotImplementedError the cell raised before you wrote your code.")


def _print_written_answer(name: str, number: int, heading: str, path: Path | None, entry: _Written | None) -> None:
    """``checks.solution(N)`` for a written exercise: the course's reasoned prediction, or where it is."""
    if path is not None and entry is not None and entry.answer:
        messages.say(
            f"🔑 {heading}: a written exercise, so there is nothing to skip; the course's reasoned prediction, "
            f"which this run's own output confirms or refutes (the run wins):\n{entry.answer}\nIt is in "
            f"{display_path(path)}, in the markdown cell above the cell that starts with '# Exercise {number}'.")
        return
    messages.say(
        f"🔑 {heading}: a written exercise, so there is nothing to skip; the course's reasoned prediction is in "
        f"the course's solutions/{name}.ipynb, in the markdown cell above the cell that starts with "
        f"'# Exercise {number}' (the student version shows *Your answer here.* there).")


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


def _library_error_in(error: BaseException, namespace: Mapping[str, Any]) -> str | None:
    """:func:`_library_error_line` for the lesson of a notebook's namespace (its ``LESSON`` variable)."""
    return _library_error_line(error, namespace.get("LESSON"))


def _show_library_errors_briefly(shell: Any = None) -> bool:
    """In IPython, show the errors of :data:`_LIBRARY_ERRORS` as one ❌ line instead of a long traceback.

    The handler passes every other exception on to the one installed before it
    (``environment.start_lesson``'s for the exercise stubs). Every check calls this again, so the handler is
    back after something else replaced it. Returns whether it is installed.
    """
    return show_in_one_line(shell if shell is not None else current_shell(), ValueError, _library_error_in)


def _refuse(message: str) -> NoReturn:
    """Stop with one ❌ line: a question ``hint`` or ``solution`` cannot answer as asked."""
    _show_library_errors_briefly()
    text = " ".join(message.splitlines())
    raise ExerciseError(f"❌ {text}")
