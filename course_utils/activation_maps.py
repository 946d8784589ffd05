"""Where does the model look? Class activation maps with Grad-CAM.

Grad-CAM (Selvaraju et al., 2017) weighs the feature maps of the last convolutional block by how much the
class score grows when each map grows (the gradient, averaged over the map), adds them up and keeps the
positive part: bright where the evidence *for that class* sits. The map has the block's resolution (7 x 7 for a
ResNet on 224-pixel images) and is stretched to the image size for display.

Why a short implementation here rather than the ``grad-cam`` or ``captum`` packages: it is about thirty lines
that students can read in one go (two hooks, a mean, a weighted sum), it adds no dependency to a course that must
install quickly on Colab and Kaggle, and it finds the right layer through the course's own architecture table
(:func:`course_utils.models.body_blocks`), so it works for every model the lessons build.

    cam = activation_map(model, image_tensor, target_class=2)   # (H, W) tensor in [0, 1]
    plots.plot_activation_maps(images, maps, titles, mean=info.mean, std=info.std)

**Resolution.** The last block of a backbone shrinks the image 32 times: 2 x 2 cells at 64 pixels, 3 x 3 at 96,
too coarse to tell a sign's border from the background. :func:`readable_map` chooses a setting with at least
7 x 7 cells: by default the last block on the images *enlarged* (to 193 pixels for a ResNet or EfficientNet, see
:func:`input_size_for`); with ``enlarge=False`` the deepest block that is fine enough at the image's own size (an
earlier block: its features say less about the class)::

    setting = readable_map(model, image_size=64)   # the last block, images enlarged to 193 px: 7 x 7
    print(setting)                                 # the map's size, to print beside the figure
    maps = activation_maps(model, images, layer=setting.layer, input_size=setting.input_size)

Enlarging explains the same weights, on the image seen larger than in training. How much of the map lands on a
sign's box at the lessons' settings, for each choice: ``tests/test_activation_maps.py`` measures it, and the
figures are in ``benchmarks/README.md`` ("Figures behind the package's defaults").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_utils import messages
from course_utils.devices import evaluating, model_device
from course_utils.models import body_blocks

__all__ = ["MIN_MAP_SIDE", "MapSetting", "activation_map", "activation_maps", "feature_map_size", "input_size_for",
           "mass_share", "readable_map", "target_layer"]

#: The smallest map (cells per side) that :func:`readable_map` accepts as readable.
MIN_MAP_SIDE = 7


def target_layer(model: nn.Module) -> nn.Module:
    """The module whose output Grad-CAM explains: the last module of the model's last body block.

    ResNet: ``layer4``; EfficientNet: ``bn2`` (the last convolution, its batch norm and activation);
    lesson 1's ``ScratchCNN``: its last convolutional block.
    """
    blocks = body_blocks(model)
    if not blocks:
        raise ValueError(f"Found no convolutional body in {type(model).__name__}: pass `layer=` explicitly.")
    last = blocks[-1]
    return last[-1] if isinstance(last, nn.ModuleList) else last


def activation_maps(model: nn.Module, images: torch.Tensor, target_classes: Sequence[int] | torch.Tensor | None
                    = None, *, layer: nn.Module | None = None, input_size: int | None = None) -> torch.Tensor:
    """Grad-CAM maps of a batch of normalised images ``(N, C, H, W)``; returns ``(N, H, W)`` in [0, 1].

    ``target_classes`` gives one class index per image (default: the class the model predicts for the image as
    given). ``layer`` defaults to :func:`target_layer`. ``input_size`` enlarges the images first (their shorter
    side to that many pixels) so that the layer's map has more cells (see :func:`readable_map`); the maps come
    back at the images' own size either way. Each map is scaled so that its maximum is 1 (all zeros when the
    model found no evidence for the class). The model runs in eval mode and is left in the mode it was in; its
    weights receive no gradients, even when they are trainable.
    """
    layer = layer if layer is not None else target_layer(model)
    device = model_device(model)
    images = images.to(device)
    original_size = images.shape[-2:]
    if target_classes is None and input_size is not None:
        with evaluating(model), torch.no_grad():
            target_classes = model(images).argmax(dim=1)  # the prediction for the image the model was trained on
    if input_size is not None and input_size != min(original_size):
        scale = input_size / min(original_size)
        images = F.interpolate(images, size=(round(original_size[0] * scale), round(original_size[1] * scale)),
                               mode="bilinear", align_corners=False)
    captured: dict[str, torch.Tensor] = {}

    def keep_output(_module: nn.Module, _inputs, output: torch.Tensor) -> torch.Tensor:
        if not output.requires_grad:  # a frozen backbone: make the activations a leaf that gets gradients
            output = output.detach().requires_grad_(True)
        captured["activations"] = output
        return output

    handle = layer.register_forward_hook(keep_output)
    try:
        with evaluating(model), torch.enable_grad():
            scores = model(images)
            if target_classes is None:
                target_classes = scores.argmax(dim=1)
            targets = torch.as_tensor(target_classes, device=scores.device).long().view(-1, 1)
            # Images do not interact in eval mode, so one backward pass gives every image its own gradients.
            chosen = scores.gather(1, targets).sum()
            activations = captured["activations"]
            gradients, = torch.autograd.grad(chosen, activations)
    finally:
        handle.remove()
    weights = gradients.mean(dim=(2, 3), keepdim=True)  # one weight per feature map
    cams = F.relu((weights * activations).sum(dim=1, keepdim=True)).detach()
    cams = F.interpolate(cams, size=original_size, mode="bilinear", align_corners=False)[:, 0]
    peak = cams.flatten(1).max(dim=1).values.clamp_min(1e-12).view(-1, 1, 1)
    return (cams / peak).cpu()


def activation_map(model: nn.Module, image: torch.Tensor, target_class: int | None = None, *,
                   layer: nn.Module | None = None, input_size: int | None = None) -> torch.Tensor:
    """The Grad-CAM map of one normalised image ``(C, H, W)`` for ``target_class`` (default: the predicted
    class): an ``(H, W)`` tensor in [0, 1], bright where the evidence for that class lies. ``layer`` and
    ``input_size`` as in :func:`activation_maps`."""
    if image.dim() != 3:
        raise ValueError(f"Expected one image of shape (C, H, W), got shape {tuple(image.shape)}; "
                         "use activation_maps() for a batch.")
    classes = None if target_class is None else [int(target_class)]
    return activation_maps(model, image.unsqueeze(0), classes, layer=layer, input_size=input_size)[0]


def mass_share(cam: torch.Tensor, mask: torch.Tensor) -> float:
    """Which share of a map's total mass lies on ``mask`` (same shape, 1 inside the object, 0 outside)."""
    cam, mask = torch.as_tensor(cam, dtype=torch.float32), torch.as_tensor(mask, dtype=torch.float32)
    if cam.shape != mask.shape:
        raise ValueError(f"The map {tuple(cam.shape)} and the mask {tuple(mask.shape)} differ in shape.")
    total = cam.sum().item()
    return float((cam * mask).sum().item() / total) if total > 0 else 0.0




def _block_outputs(model: nn.Module) -> list[nn.Module]:
    """The module at the end of each body block, from input to output (what Grad-CAM can explain)."""
    return [block[-1] if isinstance(block, nn.ModuleList) else block for block in body_blocks(model)]


def feature_map_size(model: nn.Module, layer: nn.Module, image_size: int) -> tuple[int, int]:
    """``(height, width)`` of ``layer``'s output, in cells, for a square image of ``image_size`` pixels.

    Measured by running one blank image through the model (in eval mode, without gradients).
    """
    sizes: list[tuple[int, int]] = []
    handle = layer.register_forward_hook(lambda _module, _inputs, output: sizes.append(tuple(output.shape[-2:])))
    try:
        parameter = next(model.parameters())
        with evaluating(model), torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, device=parameter.device, dtype=parameter.dtype))
    finally:
        handle.remove()
    if not sizes:
        raise ValueError(f"The layer {type(layer).__name__} is not used by the model's forward pass.")
    return sizes[0]


def input_size_for(model: nn.Module, min_side: int = MIN_MAP_SIDE, layer: nn.Module | None = None) -> int:
    """The smallest square image size (pixels) at which ``layer`` (default: :func:`target_layer`) gives a map of
    at least ``min_side`` x ``min_side`` cells: 193 for a ResNet's or EfficientNet's last block (224 gives 7 x 7)."""
    layer = layer if layer is not None else target_layer(model)
    low, high = 8, 8
    while min(feature_map_size(model, layer, high)) < min_side:
        low, high = high, 2 * high
        if high > 4096:
            raise ValueError(f"{_name_of(model, layer)} gives no {min_side} x {min_side} map below 4096 pixels.")
    while low < high:  # the map grows with the image: a binary search for the first size that is large enough
        middle = (low + high) // 2
        if min(feature_map_size(model, layer, middle)) >= min_side:
            high = middle
        else:
            low = middle + 1
    return high


@dataclass
class MapSetting:
    """Where Grad-CAM looks and at which input size, with the size of the map that gives.

    Pass ``layer`` and ``input_size`` to :func:`activation_maps`; ``print(setting)`` gives one line to show
    beside the figure (``map_size`` is in cells, height x width).
    """

    layer: nn.Module
    name: str
    map_size: tuple[int, int]
    image_size: int
    input_size: int | None = None

    def __str__(self) -> str:
        height, width = self.map_size
        seen = (f"the {self.image_size}-pixel images enlarged to {self.input_size} pixels" if self.input_size
                else f"{self.image_size}-pixel images")
        return f"Grad-CAM on {self.name} of {seen}: a {height} x {width} map"


def _name_of(model: nn.Module, layer: nn.Module) -> str:
    return next((name for name, module in model.named_modules() if module is layer), type(layer).__name__)


def readable_map(model: nn.Module, image_size: int, *, min_side: int = MIN_MAP_SIDE, enlarge: bool = True
                 ) -> MapSetting:
    """A Grad-CAM setting whose map has at least ``min_side`` x ``min_side`` cells for ``image_size``-pixel images.

    ``enlarge=True`` (default): the last block (:func:`target_layer`), with the images enlarged to
    :func:`input_size_for` pixels when they are smaller (at 224 pixels and more nothing changes).
    ``enlarge=False``: the images as they are, and the deepest body block whose map is fine enough: at 64 pixels
    ``layer2`` of a ResNet and ``blocks.2`` of EfficientNet-Lite0 (8 x 8), the last block of lesson 1's CNN (8 x 8).
    When no block is fine enough, one line says which image size the last block needs, and the block with the
    largest map is used. Either way the map is stretched back to the image's own size.
    """
    outputs = _block_outputs(model)
    if not outputs:
        raise ValueError(f"Found no convolutional body in {type(model).__name__}: pass `layer=` to "
                         "activation_maps() yourself.")
    if enlarge:
        layer = outputs[-1]
        needed = input_size_for(model, min_side, layer)
        input_size = needed if needed > image_size else None
        return MapSetting(layer, _name_of(model, layer), feature_map_size(model, layer, input_size or image_size),
                          image_size, input_size)
    sizes = [feature_map_size(model, layer, image_size) for layer in outputs]
    readable = [index for index, size in enumerate(sizes) if min(size) >= min_side]
    if readable:
        index = readable[-1]
    else:
        index = max(range(len(sizes)), key=lambda number: (min(sizes[number]), number))
        messages.say(f"ℹ️ No block of this {type(model).__name__} gives a {min_side} x {min_side} map at {image_size} "
                     f"pixels (the finest: {sizes[index][0]} x {sizes[index][1]}); the last block would need "
                     f"{input_size_for(model, min_side)}-pixel images: use readable_map(..., enlarge=True).")
    return MapSetting(outputs[index], _name_of(model, outputs[index]), sizes[index], image_size)
