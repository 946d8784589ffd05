"""Lesson 2's self-checks: freezing, the head, cached features.

Students call them as ``checks.check_...`` (:mod:`course_utils.checks`); what they share is in
:mod:`course_utils.checks_common`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from course_utils.checks_common import (
    _count,
    _expect_module,
    _fail,
    _find_head,
    _forward,
    _forward_failed,
    _passed,
    _split_parameters,
    _type_name,
)
from course_utils.devices import evaluating, run_autocast
from course_utils.image_files import load_rgb

__all__ = ["check_all_frozen", "check_features", "check_frozen", "check_head"]


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
