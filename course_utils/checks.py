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

This module is what the notebooks import; the checks live in one module per lesson, ``checks_lesson1`` to
``checks_lesson5`` (in the order the exercises come), what they share in ``checks_common``, the hints in
``hints`` and the one-line errors in ``ipython_errors``.
"""

from __future__ import annotations

from course_utils.checks_lesson1 import (
    check_cnn,
    check_conv_block,
    check_padding,
    check_train_siblings,
    check_training_step,
)
from course_utils.checks_lesson2 import check_all_frozen, check_features, check_frozen, check_head
from course_utils.checks_lesson3 import check_optimizer_groups, check_prediction_function, check_unfrozen_last_blocks
from course_utils.checks_lesson4 import (
    check_class_weights,
    check_held_out_types,
    check_probabilities,
    check_split_has_no_leak,
    check_threshold,
    check_unknown_layout,
)
from course_utils.checks_lesson5 import check_mlp_head, check_rare_classes
from course_utils.hints import hint, solution
from course_utils.ipython_errors import ExerciseError

__all__ = ["ExerciseError", "check_all_frozen", "check_class_weights", "check_cnn", "check_conv_block",
           "check_features", "check_frozen", "check_head", "check_held_out_types", "check_mlp_head",
           "check_optimizer_groups", "check_padding", "check_prediction_function", "check_probabilities",
           "check_rare_classes", "check_split_has_no_leak", "check_threshold", "check_train_siblings",
           "check_training_step", "check_unfrozen_last_blocks", "check_unknown_layout", "hint", "solution"]
