"""Helpers for the hands-on course on transfer learning for image classification with PyTorch.

The package is split by concern; import the module you need, for example::

    from course_utils import data, models, training, plots

Importing ``course_utils`` itself is cheap: torch and the plotting libraries load only when a module
that needs them is imported.
"""

__all__ = ["backbones", "checkpoints", "checks", "config", "datasets", "devices", "environment", "evaluation",
           "features", "files", "image_files", "loaders", "models", "plots", "results", "samples", "splits",
           "synthetic", "training", "transforms"]

__version__ = "0.1.0"

import warnings as _warnings

# Progress bars fall back to plain text when ipywidgets is missing; that is fine (and what executed
# notebooks should hold), so tqdm's "IProgress not found" warning would only distract students.
_warnings.filterwarnings("ignore", message="IProgress not found")
