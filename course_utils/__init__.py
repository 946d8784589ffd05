"""Helpers for the hands-on course on transfer learning for image classification with PyTorch.

The package is split by concern; import the module you need, for example::

    from course_utils import data, models, training, plots

Importing ``course_utils`` itself is cheap: torch and the plotting libraries load only when a module
that needs them is imported.
"""

__version__ = "0.1.0"
