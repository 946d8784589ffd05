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
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.devices import evaluating, model_device
from course_utils.models import body_blocks

__all__ = ["activation_map", "activation_maps", "mass_share", "target_layer"]


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
                    = None, *, layer: nn.Module | None = None) -> torch.Tensor:
    """Grad-CAM maps of a batch of normalised images ``(N, C, H, W)``; returns ``(N, H, W)`` in [0, 1].

    ``target_classes`` gives one class index per image (default: the class the model predicts). ``layer``
    defaults to :func:`target_layer`. Each map is scaled so that its maximum is 1 (all zeros when the model
    found no evidence for the class). The model runs in eval mode and is left in the mode it was in; its
    weights receive no gradients, even when they are trainable.
    """
    layer = layer if layer is not None else target_layer(model)
    device = model_device(model)
    images = images.to(device)
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
    cams = F.interpolate(cams, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cams.flatten(1).max(dim=1).values.clamp_min(1e-12).view(-1, 1, 1)
    return (cams / peak).cpu()


def activation_map(model: nn.Module, image: torch.Tensor, target_class: int | None = None, *,
                   layer: nn.Module | None = None) -> torch.Tensor:
    """The Grad-CAM map of one normalised image ``(C, H, W)`` for ``target_class`` (default: the predicted
    class): an ``(H, W)`` tensor in [0, 1], bright where the evidence for that class lies."""
    if image.dim() != 3:
        raise ValueError(f"Expected one image of shape (C, H, W), got shape {tuple(image.shape)}; "
                         "use activation_maps() for a batch.")
    classes = None if target_class is None else [int(target_class)]
    return activation_maps(model, image.unsqueeze(0), classes, layer=layer)[0]


def mass_share(cam: torch.Tensor, mask: torch.Tensor) -> float:
    """Which share of a map's total mass lies on ``mask`` (same shape, 1 inside the object, 0 outside)."""
    cam, mask = torch.as_tensor(cam, dtype=torch.float32), torch.as_tensor(mask, dtype=torch.float32)
    if cam.shape != mask.shape:
        raise ValueError(f"The map {tuple(cam.shape)} and the mask {tuple(mask.shape)} differ in shape.")
    total = cam.sum().item()
    return float((cam * mask).sum().item() / total) if total > 0 else 0.0
