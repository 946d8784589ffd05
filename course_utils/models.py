"""Models of the course: the from-scratch CNN, and the tools of transfer learning on any backbone.

Lesson 1 builds :class:`ScratchCNN` from :func:`conv_block` s. Lessons 2 to 5 take an ImageNet backbone
(:func:`course_utils.backbones.load_backbone`), swap its classifier for a new head (:func:`replace_head`),
freeze or unfreeze parts of it (:func:`freeze_backbone`, :func:`unfreeze`) and count what trains
(:func:`parameter_summary`).

Where the head and the blocks of a backbone sit comes from the table in :mod:`course_utils.backbones`. For a
model the table does not know (your own, or another torchvision model) the head is found by searching: the
first of :data:`HEAD_ATTRIBUTES` that holds a linear layer, and the body's blocks are its top-level children.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from course_utils.backbones import architecture_of

__all__ = ["HEAD_ATTRIBUTES", "ClassifierHead", "ParameterSummary", "ScratchCNN", "body_blocks", "conv_block",
           "feature_dim", "feature_extractor", "find_head", "freeze_backbone", "head_parameters",
           "parameter_groups", "parameter_summary", "replace_head", "same_padding", "set_frozen_batchnorm_eval",
           "unfreeze"]

#: For models outside the backbone table: attribute names under which architectures keep their classifier,
#: tried in this order.
HEAD_ATTRIBUTES: tuple[str, ...] = ("fc", "classifier", "head", "heads", "last_linear")


# ----------------------------------------------------------------------------------------------------------
# Lesson 1: a CNN from scratch
# ----------------------------------------------------------------------------------------------------------


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Return the padding that keeps height and width unchanged for a stride-1 convolution.

    A kernel of size ``k`` with dilation ``d`` covers ``d * (k - 1) + 1`` pixels, so it trims
    ``d * (k - 1)`` pixels from each dimension; padding half of that on each side gives them back:
    ``same_padding(3) == 1``, ``same_padding(5) == 2``, ``same_padding(3, dilation=2) == 2``.

    Raises ``ValueError`` for an even kernel (with dilation 1): it has no centre pixel, so the padding
    would have to differ between the two sides, which ``nn.Conv2d``'s single padding number cannot do.
    """
    if kernel_size < 1 or dilation < 1:
        raise ValueError(f"kernel_size and dilation must be at least 1, got {kernel_size} and {dilation}.")
    trimmed = dilation * (kernel_size - 1)
    if trimmed % 2:
        raise ValueError(
            f"A kernel of size {kernel_size} (dilation {dilation}) trims {trimmed} pixels, which cannot be "
            "padded back equally on both sides: an even kernel has no centre pixel, so use an odd size "
            "such as 3, 5 or 7."
        )
    return trimmed // 2


def conv_block(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    """One block of the from-scratch CNN: convolution, batch norm, ReLU, then 2x2 max-pooling.

    The convolution keeps height and width (``same_padding``); the max-pool halves them, so each block
    turns ``(batch, in_channels, H, W)`` into ``(batch, out_channels, H // 2, W // 2)``. The convolution has
    no bias because the batch norm right after it has its own.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=same_padding(kernel_size), bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class ScratchCNN(nn.Module):
    """The lesson-1 CNN: ``conv_block`` s, global average pooling, dropout and a linear classifier.

    Global average pooling (``AdaptiveAvgPool2d(1)``) averages each feature map to one number, so the
    classifier sees ``channels[-1]`` features whatever the image size.
    """

    def __init__(
        self,
        num_classes: int,
        channels: Sequence[int] = (32, 64, 128),
        dropout: float = 0.3,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        widths = [in_channels, *channels]
        pairs = zip(widths[:-1], widths[1:], strict=True)
        self.features = nn.Sequential(*(conv_block(a, b) for a, b in pairs))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map a batch of images ``(batch, 3, H, W)`` to class scores (logits) ``(batch, num_classes)``."""
        features = self.flatten(self.pool(self.features(images)))
        return self.classifier(self.dropout(features))


# ----------------------------------------------------------------------------------------------------------
# The head: find it, replace it
# ----------------------------------------------------------------------------------------------------------


class ClassifierHead(nn.Sequential):
    """A head built by :func:`replace_head`: ``[Dropout, Linear, ReLU] * hidden layers + [Dropout, Linear]``.

    It remembers ``in_features`` (what the backbone delivers) and ``out_features`` (the number of classes).
    """

    def __init__(self, in_features: int, num_classes: int, hidden_units: Sequence[int] = (),
                 dropout: float = 0.0) -> None:
        layers: list[nn.Module] = []
        width = in_features
        for units in hidden_units:
            layers += [nn.Dropout(dropout), nn.Linear(width, units), nn.ReLU(inplace=True)]
            width = units
        layers += [nn.Dropout(dropout), nn.Linear(width, num_classes)]
        super().__init__(*layers)
        self.in_features = in_features
        self.out_features = num_classes


def _get(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path) if path else model


def _set(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    setattr(_get(model, parent_path), name, module)


def _last_linear(module: nn.Module) -> tuple[str, nn.Module] | None:
    """The last Linear inside ``module``, or the course's own head where one was put inside it."""
    for kind in (ClassifierHead, nn.Linear):
        found = [(name, child) for name, child in module.named_modules() if isinstance(child, kind)]
        if found:
            return found[-1]
    return None


def find_head(model: nn.Module) -> tuple[str, nn.Module]:
    """Find the classifier at the end of ``model``; return its attribute path and the module.

    Works for torchvision's ResNet (``"fc"``), timm's EfficientNet (``"classifier"``), models whose
    classifier is a Sequential (the path of its last Linear, e.g. ``"classifier.1"`` for torchvision's
    EfficientNet), models with a ``head`` (``"head"`` or ``"head.fc"``), and heads built by
    :func:`replace_head` (the whole head).
    """
    architecture = architecture_of(model)
    if architecture is not None:
        module = _get(model, architecture.head)
        if isinstance(module, (nn.Linear, ClassifierHead)):
            return architecture.head, module
    for attribute in HEAD_ATTRIBUTES:
        module = getattr(model, attribute, None)
        if not isinstance(module, nn.Module):
            continue
        if isinstance(module, (nn.Linear, ClassifierHead)):
            return attribute, module
        found = _last_linear(module)
        if found is not None:
            return f"{attribute}.{found[0]}", found[1]
    raise ValueError(
        f"Could not find the classifier of this {type(model).__name__}: looked for a Linear layer under "
        f"{', '.join(HEAD_ATTRIBUTES)}. Replace its last layer by hand."
    )


def _head_root(model: nn.Module) -> str:
    """The top-level attribute that holds the head; everything else is the body (backbone)."""
    return find_head(model)[0].split(".")[0]


def replace_head(model: nn.Module, num_classes: int, hidden_units: Sequence[int] = (),
                 dropout: float = 0.0) -> nn.Module:
    """Replace the classifier of ``model`` by a new, trainable head for ``num_classes`` classes.

    The new head takes the same number of input features as the old one. With ``hidden_units=(256,)``
    it gets a hidden layer (dropout, linear, ReLU) before the final dropout and linear layer. Without hidden
    layers and dropout the head is a plain ``nn.Linear``, just as if you had written
    ``model.fc = nn.Linear(model.fc.in_features, num_classes)``. The model is changed in place and returned,
    so ``model = replace_head(model, 4)`` and ``replace_head(model, 4)`` both work.
    """
    path, old_head = find_head(model)
    in_features = old_head.in_features
    new_head: nn.Module
    if hidden_units or dropout:
        new_head = ClassifierHead(in_features, num_classes, hidden_units, dropout)
    else:
        new_head = nn.Linear(in_features, num_classes)
    reference = next(old_head.parameters(), None)
    if reference is not None:
        new_head.to(device=reference.device, dtype=reference.dtype)
    _set(model, path, new_head)
    return model


def feature_dim(model: nn.Module) -> int:
    """Number of features the backbone hands to the head (e.g. 512 for ResNet-18, 1280 for Lite0)."""
    return int(find_head(model)[1].in_features)


def feature_extractor(model: nn.Module) -> nn.Module:
    """Return a copy of ``model`` whose head is ``nn.Identity``: it outputs features, not class scores."""
    extractor = copy.deepcopy(model)
    _set(extractor, find_head(extractor)[0], nn.Identity())
    return extractor


# ----------------------------------------------------------------------------------------------------------
# Freezing and unfreezing
# ----------------------------------------------------------------------------------------------------------


def body_blocks(model: nn.Module) -> list[nn.Module]:
    """The body (everything but the head) as an ordered list of blocks, from input to output.

    ResNet: stem (conv1 + bn1), layer1, layer2, layer3, layer4. timm's EfficientNet: stem (conv_stem + bn1),
    blocks[0] ... blocks[6], and the final conv_head + bn2. Other models: their top-level parts that hold
    parameters (a single Sequential, such as ``features``, is split into its children).
    """
    architecture = architecture_of(model)
    if architecture is not None:
        return [_get(model, paths[0]) if len(paths) == 1 else nn.ModuleList([_get(model, p) for p in paths])
                for paths in architecture.blocks]
    head_root = _head_root(model)
    parts = [module for name, module in model.named_children()
             if name != head_root and any(True for _ in module.parameters())]
    if len(parts) == 1 and isinstance(parts[0], nn.Sequential):
        parts = [module for module in parts[0].children() if any(True for _ in module.parameters())]
    return parts


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of the head (everything under the attribute that holds the classifier)."""
    return list(_get(model, _head_root(model)).parameters())


def freeze_backbone(model: nn.Module) -> nn.Module:
    """Freeze every parameter except the head's (``requires_grad=False``); return the model.

    Note: frozen weights do not change, but batch-norm layers still update their running mean and variance
    whenever the model is in ``train()`` mode. Call :func:`set_frozen_batchnorm_eval` after
    ``model.train()`` to keep them exactly as they were (the course's ``fit`` does).
    """
    for parameter in model.parameters():
        parameter.requires_grad = False
    for parameter in head_parameters(model):
        parameter.requires_grad = True
    return model


def unfreeze(model: nn.Module, last_blocks: int | None = None) -> nn.Module:
    """Make the model trainable again: everything (``last_blocks=None``), or the head plus the last N blocks.

    The blocks are those of :func:`body_blocks`; earlier blocks stay (or become) frozen. Returns the model.
    """
    if last_blocks is None:
        for parameter in model.parameters():
            parameter.requires_grad = True
        return model
    blocks = body_blocks(model)
    if not 0 <= last_blocks <= len(blocks):
        raise ValueError(f"last_blocks must be between 0 and {len(blocks)} (the body has {len(blocks)} "
                         f"blocks), got {last_blocks}.")
    freeze_backbone(model)
    for block in blocks[len(blocks) - last_blocks:]:
        for parameter in block.parameters():
            parameter.requires_grad = True
    return model


def set_frozen_batchnorm_eval(model: nn.Module) -> int:
    """Put every batch-norm layer whose parameters are all frozen in eval mode; return how many.

    Call it right after ``model.train()``: a frozen backbone then keeps its ImageNet running statistics
    instead of drifting towards the statistics of the new (small) data set.
    """
    count = 0
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            parameters = list(module.parameters())
            if parameters and not any(parameter.requires_grad for parameter in parameters):
                module.eval()
                count += 1
    return count


# ----------------------------------------------------------------------------------------------------------
# Counting parameters and building optimizer groups
# ----------------------------------------------------------------------------------------------------------


@dataclass
class ParameterSummary:
    """How many parameters a model has (``total``) and how many of them will learn (``trainable``)."""

    total: int
    trainable: int

    @property
    def trainable_share(self) -> float:
        """Fraction of the parameters that train, between 0 and 1."""
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.total:,} parameters, {self.trainable:,} trainable ({self.trainable_share:.2%})"


def parameter_summary(model: nn.Module) -> ParameterSummary:
    """Count the parameters of ``model``: ``print(parameter_summary(model))`` gives one readable line."""
    total = sum(parameter.numel() for parameter in model.parameters())
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    return ParameterSummary(total=total, trainable=trainable)


def parameter_groups(model: nn.Module, head_lr: float, body_lr: float) -> list[dict[str, Any]]:
    """Optimizer parameter groups with one learning rate for the head and another for the body.

    Frozen parameters are left out, and so is a group with nothing to train. Fine-tuning usually gives
    the pretrained body a smaller learning rate than the new head (discriminative learning rates)::

        optimizer = torch.optim.AdamW(parameter_groups(model, head_lr=1e-3, body_lr=1e-4))
    """
    head_ids = {id(parameter) for parameter in head_parameters(model)}
    head = [p for p in model.parameters() if p.requires_grad and id(p) in head_ids]
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [
        {"params": head, "lr": head_lr, "name": "head"},
        {"params": body, "lr": body_lr, "name": "body"},
    ]
    return [group for group in groups if group["params"]]
