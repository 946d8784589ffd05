"""Using a trained model: predictions for a loader, one image or a folder, reports, and unknown-input scores.

- :func:`predict` gives logits, probabilities, predicted and true labels for a whole loader;
- :func:`predict_image` ranks the classes for one image file (any mode, any size);
- :func:`predict_folder` writes the predictions for an unlabeled folder to a CSV (a submission file), through
  :func:`write_predictions_csv`, which neutralises cells a spreadsheet would run as a formula;
- :func:`classification_table` is scikit-learn's classification report as a table;
- lesson 4's out-of-distribution helpers: :func:`max_softmax_scores`, :func:`auroc`,
  :func:`threshold_keeping` and :func:`ood_summary`.

Convention for the out-of-distribution (OOD) helpers: a *higher* score means "more likely a known,
in-distribution input". AUROC treats the known examples as the positive class: 1.0 means every known
example scores above every unknown one, 0.5 means the score cannot tell them apart, 0.0 means it ranks
them exactly the wrong way round.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from course_utils import messages
from course_utils.datasets import list_unlabeled_images
from course_utils.devices import batch_to_device, evaluating, model_device, prepare_model, run_autocast
from course_utils.files import atomic_write, display_path, is_utf8_name, printable_name
from course_utils.image_files import load_rgb, to_numpy
from course_utils.loaders import batches_with_progress

__all__ = ["FORMULA_STARTS", "Predictions", "auroc", "classification_table", "max_softmax_scores",
           "mistakes_by_group", "ood_summary", "predict", "predict_folder", "predict_image", "spreadsheet_safe",
           "threshold_keeping", "write_predictions_csv"]

ArrayLike = Any  # a torch tensor, numpy array or list of numbers


@dataclass
class Predictions:
    """A model's outputs for a data set (CPU tensors, one row per example, in loader order).

    ``logits`` are the raw scores, ``probabilities`` their softmax, ``predicted`` the top class and
    ``targets`` the true labels (``None`` for an unlabeled loader).
    """

    logits: torch.Tensor
    probabilities: torch.Tensor
    predicted: torch.Tensor
    targets: torch.Tensor | None

    @property
    def confidence(self) -> torch.Tensor:
        """The probability of the predicted class for each example."""
        return self.probabilities.max(dim=1).values

    @property
    def accuracy(self) -> float:
        """Share of examples whose predicted class is the true one."""
        if self.targets is None:
            raise ValueError("These predictions have no true labels (the loader gave images only).")
        return float((self.predicted == self.targets).float().mean())

    def __len__(self) -> int:
        return len(self.predicted)


def _from_logits(logits: torch.Tensor, targets: torch.Tensor | None) -> Predictions:
    probabilities = torch.softmax(logits, dim=1)
    return Predictions(logits, probabilities, probabilities.argmax(dim=1), targets)


def predict(model: nn.Module, loader: Iterable, device: torch.device | str | None = None,
            *, verbose: bool = False, channels_last: bool | None = None) -> Predictions:
    """Run ``model`` (in eval mode, no gradients) over ``loader`` and collect its :class:`Predictions`.

    ``loader`` yields ``(images, labels)`` or just images (an empty loader gives empty predictions). ``device``
    defaults to where the model is.
    The model and the batches go channels-last where that is faster (``channels_last=None`` follows
    :data:`course_utils.devices.CHANNELS_LAST`; the predictions are the same up to float rounding).
    """
    device = torch.device(device) if device is not None else model_device(model)
    prepare_model(model, device, channels_last)
    all_logits, all_targets = [], []
    with evaluating(model):
        for batch in batches_with_progress(loader, description="predict", show=verbose):
            inputs, targets = batch if isinstance(batch, (list, tuple)) else (batch, None)
            with run_autocast(device):
                logits = model(batch_to_device(inputs, device, channels_last))
            all_logits.append(logits.float().cpu())
            if targets is not None:
                all_targets.append(targets.cpu())
    if not all_logits:  # an empty loader (a folder of unreadable files, say): no predictions, not an error
        empty = torch.empty(0, 0)
        return Predictions(empty, empty, torch.empty(0, dtype=torch.long), None)
    targets = torch.cat(all_targets) if all_targets else None
    return _from_logits(torch.cat(all_logits), targets)


def predict_image(model: nn.Module, path: str | os.PathLike[str], transform: Callable,
                  classes: Sequence[str], device: torch.device | str | None = None, *,
                  channels_last: bool | None = None) -> pd.Series:
    """Class probabilities for one image file, highest first (a Series: class name -> probability).

    Any image works: grayscale, palette, transparent or CMYK images are converted to RGB first, and
    ``transform`` (use the model's *eval* transform) resizes it to the size the model expects.
    """
    device = torch.device(device) if device is not None else model_device(model)
    prepare_model(model, device, channels_last)
    image = batch_to_device(transform(load_rgb(Path(path))).unsqueeze(0), device, channels_last)
    with evaluating(model):
        probabilities = torch.softmax(model(image).float(), dim=1)[0].cpu()
    if len(classes) != len(probabilities):
        raise ValueError(
            f"The model has {len(probabilities)} outputs but {len(classes)} class names were given."
        )
    series = pd.Series(probabilities.numpy(), index=list(classes), name=Path(path).name)
    return series.sort_values(ascending=False)


class _FolderImages(torch.utils.data.Dataset):
    """The images at ``paths`` through ``transform``, each as ``(tensor, index, None)``; an image that cannot be
    read gives ``(None, index, why)`` instead of an error, so that one bad file never stops the others."""

    def __init__(self, paths: Sequence[Path], transform: Callable) -> None:
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, int, str | None]:
        try:
            return self.transform(load_rgb(self.paths[index])), index, None
        except (OSError, ValueError, SyntaxError) as error:  # unreadable, corrupt, not an image after all
            return None, index, type(error).__name__
        except (MemoryError, Image.DecompressionBombError):  # one huge image: skip it, keep the others
            return None, index, "too large to decode"


def _readable_batch(items: list[tuple[torch.Tensor | None, int, str | None]]) -> tuple[Any, ...]:
    """A loader batch of :class:`_FolderImages` items: ``(images, indices, [(index, why), ...])``."""
    readable = [(image, index) for image, index, _ in items if image is not None]
    images = torch.stack([image for image, _ in readable]) if readable else torch.empty(0)
    indices = torch.tensor([index for _, index in readable], dtype=torch.long)
    return images, indices, [(index, why) for _, index, why in items if why is not None]


def predict_folder(model: nn.Module, folder: str | os.PathLike[str], transform: Callable,
                   classes: Sequence[str], csv_path: str | os.PathLike[str] | None = None, *,
                   device: torch.device | str | None = None, batch_size: int = 64,
                   top_k: int = 1, verbose: bool = True, channels_last: bool | None = None,
                   num_workers: int | None = None) -> pd.DataFrame:
    """Predict every image in ``folder`` (and its sub-folders); return and write a CSV table.

    Columns: ``file`` (path relative to ``folder``), ``predicted_class``, ``confidence`` (the probability
    of that class). With ``top_k`` above 1, also ``top_1_class``, ``top_1_probability``, ...,
    ``top_<k>_class``, ``top_<k>_probability`` (the k most probable classes, best first). Files that cannot be
    read (unreadable, corrupt, or too large to decode in the memory there is) are skipped with one summary
    line. The CSV is written with :func:`write_predictions_csv` to
    ``csv_path`` when given (atomically, names that are not UTF-8 escaped, formula-like cells neutralised); when
    it cannot be written (a full disk, a file in the way) a warning says so and the table is still returned,
    so no computed prediction is lost.

    The images go through a DataLoader (``num_workers`` background processes decode them, by default
    :func:`course_utils.loaders.default_num_workers`) and :func:`predict`, the same path as every evaluation in
    the lessons. ``transform`` should be the model's evaluation transform.
    """
    from torch.utils.data import DataLoader

    from course_utils.loaders import default_num_workers

    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, not {top_k}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, not {batch_size!r}.")
    top_k = min(top_k, len(classes))
    folder = Path(folder)
    paths = list_unlabeled_images(folder)
    workers = default_num_workers() if num_workers is None else num_workers
    loader = DataLoader(_FolderImages(paths, transform), batch_size=batch_size, shuffle=False,
                        num_workers=min(workers, max(0, len(paths) // batch_size)), collate_fn=_readable_batch)
    skipped: list[str] = []

    def readable_batches() -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        for images, indices, problems in batches_with_progress(loader, description="predict", show=verbose):
            skipped.extend(f"{printable_name(paths[index].name)} ({why})" for index, why in problems)
            if len(indices):
                yield images, indices  # the indices stand where labels would: predict keeps them in order

    predictions = predict(model, readable_batches(), device, channels_last=channels_last)
    if len(predictions) and predictions.logits.shape[1] != len(classes):
        raise ValueError(f"The model has {predictions.logits.shape[1]} outputs but {len(classes)} class names "
                         "were given.")
    rows: list[dict[str, Any]] = []
    if len(predictions):
        best_probabilities, best_labels = predictions.probabilities.topk(top_k, dim=1)
        confidence = predictions.confidence.tolist()
        for row_number, index in enumerate(predictions.targets.tolist()):
            row = {"file": paths[index].relative_to(folder).as_posix(),
                   "predicted_class": classes[int(predictions.predicted[row_number])],
                   "confidence": confidence[row_number]}
            if top_k > 1:
                for rank, (other, probability) in enumerate(
                        zip(best_labels[row_number].tolist(), best_probabilities[row_number].tolist(), strict=True),
                        1):
                    row[f"top_{rank}_class"] = classes[other]
                    row[f"top_{rank}_probability"] = probability
            rows.append(row)
    if skipped:
        shown = ", ".join(skipped[:3]) + (f", +{len(skipped) - 3} more" if len(skipped) > 3 else "")
        messages.warn(
            f"⚠️ Skipped {len(skipped)} of {len(paths)} files in {display_path(folder)} that could not be read: "
            f"{shown}.")
    columns = ["file", "predicted_class", "confidence"]
    if top_k > 1:
        columns += [f"top_{rank}_{what}" for rank in range(1, top_k + 1) for what in ("class", "probability")]
    table = pd.DataFrame(rows, columns=columns)
    if csv_path is not None:
        try:
            write_predictions_csv(table, csv_path)
        except OSError as error:
            messages.warn(f"⚠️ {error} The {len(table)} predictions are in the table this function returns; save them "
                          "with table.to_csv(...) to another path.")
    return table


#: The first characters that make a spreadsheet (Excel, LibreOffice, Google Sheets) read a cell as a formula or a
#: command, as OWASP's advice on CSV injection lists them: a file named ``=1+cmd|' /C calc'!A0.png`` would run.
FORMULA_STARTS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs: a leading ``'`` when it starts with one of
    :data:`FORMULA_STARTS` (OWASP's advice on CSV injection), else unchanged."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def write_predictions_csv(table: pd.DataFrame, csv_path: str | os.PathLike[str]) -> Path:
    """Write a predictions table (as :func:`predict_folder` returns it) to ``csv_path`` atomically.

    Every text cell (file and class names) goes through :func:`spreadsheet_safe` and is quoted (a name may
    hold a comma or a line break), and names that are not UTF-8 are spelled with ``\\xNN`` escapes (with a
    notice). Raises ``OSError`` with one sentence naming the file when
    it cannot be written (a folder, a device or a link there, a read-only folder, a full disk).
    """
    csv_path = Path(csv_path)
    odd = [name for name in table["file"] if not is_utf8_name(name)]
    written = table.copy()
    for column in written.columns:
        if not pd.api.types.is_numeric_dtype(written[column]):
            written[column] = [spreadsheet_safe(printable_name(value)) if isinstance(value, str) else value
                               for value in written[column]]
    try:
        with atomic_write(csv_path) as temporary:
            written.to_csv(temporary, index=False, encoding="utf-8", quoting=csv.QUOTE_NONNUMERIC)
    except OSError as error:
        if error.strerror:  # the system's reason (a full disk, a read-only folder): name it and the way out
            raise type(error)(f"Could not write {display_path(csv_path)} ({error.strerror.lower()}): free some "
                              "space, or choose a path in a folder you can write to.") from None
        raise type(error)(f"Could not write {display_path(csv_path)}: {error}") from None
    if odd:
        messages.say(f"ℹ️ {len(odd)} file name(s) are not valid UTF-8 (e.g. {printable_name(odd[0])}): the CSV spells "
                     "their odd bytes as \\xNN; rename the files to keep the names readable.")
    return csv_path


def classification_table(targets: ArrayLike, predicted: ArrayLike, classes: Sequence[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class, plus macro and weighted averages, as a DataFrame.

    Rows: one per class, then ``macro avg`` and ``weighted avg``; the overall accuracy is in
    ``table.attrs["accuracy"]``. A class that is never predicted gets precision 0 (no warning).
    """
    from sklearn.metrics import classification_report

    report = classification_report(
        to_numpy(targets), to_numpy(predicted), labels=list(range(len(classes))), target_names=list(classes),
        output_dict=True, zero_division=0,
    )
    accuracy = report.pop("accuracy", None)
    report.pop("micro avg", None)
    table = pd.DataFrame(report).T.rename(columns={"f1-score": "f1"})
    table = table[["precision", "recall", "f1", "support"]].astype({"support": int})
    table.attrs["accuracy"] = float(accuracy) if accuracy is not None else float(
        np.mean(to_numpy(targets) == to_numpy(predicted)))
    return table


def mistakes_by_group(targets: ArrayLike, predicted: ArrayLike, confidence: ArrayLike,
                      groups: Sequence[Any]) -> pd.DataFrame:
    """The most confident mistake of each group (a track: the frames of one physical sign), most confident first.

    Frames of one sign look alike, so a list of the most confident mistakes image by image can be one sign seen
    several times. Here each group appears once, with its most confident wrong frame. ``confidence`` is the
    probability of the predicted class per image, or the ``N x classes`` probabilities. Columns: ``index`` (the
    image's position), ``group``, ``target``, ``predicted``, ``confidence``, ``wrong_frames`` (how many of the
    group's images are wrong) and ``frames`` (how many images the group has). No mistake: an empty table.
    """
    targets, predicted = to_numpy(targets).astype(int).ravel(), to_numpy(predicted).astype(int).ravel()
    confidence = to_numpy(confidence).astype(float)
    groups = [str(group) for group in groups]
    if len({len(targets), len(predicted), len(confidence), len(groups)}) != 1:
        raise ValueError(f"mistakes_by_group needs targets, predicted, confidence and groups of the same length, "
                         f"got {len(targets)}, {len(predicted)}, {len(confidence)} and {len(groups)}.")
    if confidence.ndim == 2:  # probabilities: keep the predicted class's
        confidence = confidence[np.arange(len(confidence)), predicted]
    table = pd.DataFrame({"index": np.arange(len(targets)), "group": groups, "target": targets,
                          "predicted": predicted, "confidence": confidence})
    table["frames"] = table.groupby("group")["index"].transform("size")
    wrong = table[table["target"] != table["predicted"]].copy()
    wrong["wrong_frames"] = wrong.groupby("group")["index"].transform("size")
    worst = wrong.sort_values(["confidence", "index"], ascending=[False, True], kind="stable")
    worst = worst.drop_duplicates("group", keep="first").reset_index(drop=True)
    return worst[["index", "group", "target", "predicted", "confidence", "wrong_frames", "frames"]]


# ------------------------------------------------------------------------------ out-of-distribution
def max_softmax_scores(probabilities: ArrayLike) -> np.ndarray:
    """The maximum softmax probability of each example: the classic baseline score for "is this known?".

    A confident prediction (close to 1) suggests a known kind of input; a flat distribution suggests an
    unknown one. Pass probabilities (``Predictions.probabilities``), not logits.
    """
    values = to_numpy(probabilities)
    if values.ndim != 2:
        raise ValueError(f"Expected probabilities of shape (examples, classes), got shape {values.shape}.")
    return values.max(axis=1)


def auroc(known_scores: ArrayLike, unknown_scores: ArrayLike) -> float:
    """Area under the ROC curve for telling known (positive class) from unknown examples by score.

    Higher scores must mean "known". 1.0: a threshold separates them perfectly; 0.5: no better than a
    coin; below 0.5: the score ranks them the wrong way round.
    """
    from sklearn.metrics import roc_auc_score

    known, unknown = to_numpy(known_scores).ravel(), to_numpy(unknown_scores).ravel()
    if len(known) == 0 or len(unknown) == 0:
        raise ValueError("auroc needs at least one known and one unknown score.")
    labels = np.concatenate([np.ones(len(known)), np.zeros(len(unknown))])
    return float(roc_auc_score(labels, np.concatenate([known, unknown])))


def threshold_keeping(known_scores: ArrayLike, keep: float = 0.95) -> float:
    """The highest threshold that keeps at least the share ``keep`` of known examples (score >= threshold).

    Choose it on validation data: with ``keep=0.95`` about 5% of known inputs would be rejected as
    unknown; everything scoring below the threshold is answered with "unknown".
    """
    if not 0 < keep <= 1:
        raise ValueError(f"keep is a share of known examples in (0, 1], got {keep}.")
    scores = np.sort(to_numpy(known_scores).ravel())
    if len(scores) == 0:
        raise ValueError("threshold_keeping needs at least one known score.")
    may_drop = math.floor(len(scores) * (1 - keep) + 1e-9)  # how many known examples may fall below
    return float(scores[may_drop])


def ood_summary(known_scores: ArrayLike, unknown_scores: ArrayLike, keep: float = 0.95) -> dict[str, float]:
    """AUROC, the threshold keeping ``keep`` of known examples, and what that threshold does to both groups.

    ``known_kept``: share of known examples at or above the threshold; ``unknown_rejected``: share of
    unknown examples below it (caught); ``unknown_accepted``: the rest (still given a known label).
    """
    known, unknown = to_numpy(known_scores).ravel(), to_numpy(unknown_scores).ravel()
    threshold = threshold_keeping(known, keep)
    rejected = float(np.mean(unknown < threshold))
    return {
        "auroc": auroc(known, unknown),
        "threshold": threshold,
        "known_kept": float(np.mean(known >= threshold)),
        "unknown_rejected": rejected,
        "unknown_accepted": 1.0 - rejected,
    }
