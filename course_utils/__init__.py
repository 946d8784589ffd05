"""Helpers for the hands-on course on transfer learning for image classification with PyTorch.

The lessons import the module they need, for example::

    from course_utils import datasets, models, training, plots

One module per concern, in layers; a module imports only from the layers above it (and its own layer as
shown by ``->``). No import cycles, and nothing here imports ``course_tools`` (tests/test_architecture.py):

- basics: ``config`` (settings, profiles, lesson defaults), ``files`` (atomic writes), ``samples``
  (``Sample``, errors, tracks), ``image_files`` (``load_rgb``, ``to_numpy``), ``devices`` (``evaluating``,
  device moves, autocast), ``transforms`` (v2 pipelines)
- data: ``splits`` (track-aware splits), ``synthetic`` (synthetic traffic signs), ``datasets`` (folders,
  GTSRB, pets, ``load_dataset``) -> splits, synthetic; ``loaders`` (``ImageDataset``, ``make_loader``)
- models: ``backbones`` (one table per architecture, ``load_backbone``), ``models`` (heads, freezing)
  -> backbones; ``checkpoints`` -> models
- learning: ``training`` (``fit``); ``features`` (cached features) -> training
- results: ``evaluation`` (predictions, OOD scores); ``plots`` -> evaluation; ``checks`` (the
  exercises' self-checks); ``environment`` (device, seed, profile banner); ``results``
  (``metrics.json``)

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
