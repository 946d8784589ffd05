"""The course's tooling for maintainers and instructors, behind the ``course`` command.

- ``cli``: the ``course`` command (build, check, run, params, prefetch, predict) -> notebooks, runner, kit
- ``notebooks``: solutions in, student notebooks out (``course build``, ``course check``) -> stripper,
  setup_cell, badges, repository, parameters
- ``stripper``: exercise markers in, stubs out (an nbconvert preprocessor)
- ``repository``: the course's GitHub address, data in ``pyproject.toml``
- ``setup_cell``: the set-up cell, copied from ``setup_cell_code`` (real Python) -> repository
- ``badges``: "Open in Colab/Kaggle" -> repository
- ``parameters``: a lesson's parameters, read through papermill
- ``runner``: ``course run`` (papermill) and its report -> notebooks, kernel_noise
- ``kernel_noise``: the closed-socket race of a stopped lesson kept off the terminal (in every kernel it starts)
- ``prefetch``: data sets and weights downloaded and verified before a workshop
- ``kit``: the workshop kit (wheels, data, weights, manifest) -> prefetch, repository
- ``predict``, ``claims``: ``course predict``; the claims table

Lessons never import it. It may import ``course_utils``; ``course_utils`` never imports it
(tests/test_architecture.py checks both directions and the absence of cycles).
"""

__all__ = ["badges", "claims", "cli", "kernel_noise", "kit", "notebooks", "parameters", "predict", "prefetch",
           "repository", "runner", "setup_cell", "setup_cell_code", "stripper"]
