"""The course's tooling for maintainers and instructors, behind the ``course`` command.

- ``cli``: the ``course`` command (build, check, run, params, prefetch) -> notebooks, runner, prefetch
- ``notebooks``: solutions in, student notebooks out (solution stripper, set-up and badge templates,
  ``course check``), parameters read through papermill
- ``runner``: ``course run`` (papermill) and its report -> notebooks
- ``prefetch``: data sets and weights downloaded and verified before a workshop

Lessons never import it. It may import ``course_utils``; ``course_utils`` never imports it
(tests/test_architecture.py checks both directions and the absence of cycles).
"""

__all__ = ["cli", "notebooks", "prefetch", "runner"]
