"""``course predict``: use a trained model outside the notebooks.

    course predict outputs/05_your_own_images/model.pt my_photos/ --output predictions.csv --top-k 3

Loads a checkpoint saved by any lesson (weights only, never pickled code: see
:func:`course_utils.checkpoints.build_model_from_checkpoint`), predicts every image under the folder with a
progress bar, skips unreadable files with one line saying which, writes the CSV atomically and prints a short
summary. It needs no network: the architecture is rebuilt without downloading ImageNet weights.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pandas as pd

__all__ = ["predict_to_csv"]


def predict_to_csv(checkpoint: str | Path, folder: str | Path, output: str | Path = "predictions.csv", *,
                   top_k: int = 3, device: str | None = None, batch_size: int = 32,
                   verbose: bool = True) -> pd.DataFrame:
    """Predict every image under ``folder`` with the model in ``checkpoint``; write ``output`` (CSV).

    Columns: ``file``, ``predicted_class``, ``confidence`` and, for ``top_k`` above 1, the ``top_k`` best
    classes with their probabilities. ``device`` defaults to the best available one (``cuda``, ``mps``,
    ``cpu``). Raises ``FileNotFoundError`` for a missing checkpoint or folder. Returns the table.
    """
    checkpoint, folder, output = Path(checkpoint), Path(folder), Path(output)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"No checkpoint at {checkpoint}: pass the .pt file a lesson saved "
                                "(e.g. outputs/05_your_own_images/model.pt).")
    if not folder.is_dir():
        raise FileNotFoundError(f"No folder at {folder}: pass the folder of images to predict.")
    if top_k < 1:
        raise ValueError(f"--top-k must be at least 1, not {top_k}.")

    from course_utils import checkpoints, datasets, environment, evaluation, transforms

    started = time.perf_counter()
    model, metadata = checkpoints.build_model_from_checkpoint(checkpoint)
    target = environment.select_device(device)
    model.to(target)
    classes = metadata["classes"]
    if not metadata.get("input_size") or not metadata.get("mean") or not metadata.get("std"):
        raise ValueError(f"{checkpoint} does not record its input size and normalisation; "
                         "save it with save_checkpoint(..., mean=..., std=..., input_size=...).")
    transform = transforms.eval_transform(mean=metadata["mean"], std=metadata["std"],
                                          image_size=metadata["input_size"])
    table = evaluation.predict_folder(model, folder, transform, classes, output, device=target,
                                      batch_size=batch_size, top_k=top_k, verbose=verbose)
    seconds = time.perf_counter() - started
    if verbose:
        counts = Counter(table["predicted_class"])
        shown = ", ".join(f"{name} {counts[name]}" for name in classes if counts[name])
        skipped = len(datasets.files_under(folder)) - len(table)
        print(f"Predicted {len(table)} image(s) with {metadata['arch']} ({len(classes)} classes) on {target} "
              f"in {seconds:.1f} s" + (f", {skipped} file(s) skipped" if skipped else "") + f": {shown}.")
        print(f"Wrote {output}")
    return table
