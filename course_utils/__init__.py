"""Helpers for the hands-on course on transfer learning for image classification with PyTorch.

The lessons import the module they need, for example::

    from course_utils import datasets, models, training, plots

One module per concern, in layers; a module imports only from the layers above it (and its own layer as
shown by ``->``). No import cycles, and nothing here imports ``course_tools`` (tests/test_architecture.py):

- basics: ``config`` (settings, profiles, lesson defaults), ``files`` (atomic writes), ``samples``
  (``Sample``, errors, tracks), ``image_files`` (``load_rgb``, ``to_numpy``), ``devices`` (``evaluating``,
  device moves, autocast), ``transforms`` (v2 pipelines), ``progress`` (bars that leave a line of text),
  ``messages`` (every line the package prints, and the one switch that quiets them), ``solution_markers``
  (how solution notebooks mark exercises, read by ``course build`` and ``checks.solution``), ``stop_at_error``
  (Run All ends at the first red box)
- data: ``splits`` (track-aware splits), ``synthetic`` (synthetic traffic signs), ``datasets`` (folders,
  GTSRB, pets, ``load_dataset``) -> splits, synthetic; ``loaders`` (``ImageDataset``, ``make_loader``)
- models: ``backbones`` (one table per architecture, ``load_backbone``), ``models`` (heads, freezing)
  -> backbones; ``checkpoints`` -> checkpoint_checks (what a file may hold), models
- learning: ``training`` (``fit``, ``fine_tune``, ``find_learning_rate``); ``features`` (cached features)
  -> training; ``baselines`` (1-NN and logistic regression on thumbnails) -> splits; ``near_duplicates``
  (near-copies between train and test, by feature similarity); ``distributed`` (torchrun, DDP samplers, sums
  over ranks; training -> distributed)
- results: ``evaluation`` (predictions, OOD scores); ``calibration`` (ECE, temperature scaling) -> findings;
  ``plots`` -> evaluation; ``checks`` (the
  exercises' self-checks) -> ``checks_lesson1`` to ``checks_lesson5`` -> ``checks_common`` -> ``hints``
  (``checks.hint(N)``) -> ``ipython_errors``; ``environment`` (device, seed, profile banner); ``results``
  (``metrics.json``)

Importing ``course_utils`` itself is cheap: torch and the plotting libraries load only when a module
that needs them is imported.
"""

__all__ = ["backbones", "baselines", "calibration", "checkpoint_checks", "checkpoints", "checks", "config", "datasets",
           "devices", "distributed", "environment", "evaluation", "features", "files", "hints", "image_files",
           "loaders", "messages", "models", "near_duplicates", "plots", "progress", "results", "samples",
           "solution_markers", "splits", "stop_at_error", "synthetic", "training", "transforms"]

__version__ = "0.1.0"

import warnings as _warnings

# Progress bars fall back to plain text when ipywidgets is missing; that is fine (and what executed
# notebooks should hold), so tqdm's "IProgress not found" warning would only distract students.
_warnings.filterwarnings("ignore", message="IProgress not found")
