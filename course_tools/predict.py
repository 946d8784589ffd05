"""``course predict``: use a trained model outside the notebooks.

    course predict outputs/05_your_own_images/model.pt my_photos/ --output predictions.csv --top-k 3

Loads a checkpoint saved by any lesson (weights only, never pickled code: see
:func:`course_utils.checkpoints.build_model_from_checkpoint`), predicts every image under the folder with a
progress bar, skips unreadable files (and an image too large for the memory there is) with one line saying which,
writes the CSV atomically and prints a short summary. It needs no network: the architecture is rebuilt without
downloading ImageNet weights. An output path that cannot take the CSV (a folder, a device, a link, a read-only
folder, a file on the way) is refused before anything is predicted; a CSV that could not be written after all
(a full disk) raises ``OSError``, so the command exits non-zero instead of reporting success.
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
    ``cpu``). Raises ``FileNotFoundError`` for a missing checkpoint or folder, ``ValueError`` for a bad
    ``top_k`` or ``batch_size``, ``OSError`` when ``output`` cannot be written (checked before predicting, and
    again when writing) and ``MemoryError`` (one sentence) when the run as a whole runs out of memory.
    Returns the table.
    """
    checkpoint, folder, output = Path(checkpoint), Path(folder), Path(output)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"No checkpoint at {checkpoint}: pass the .pt file a lesson saved "
                                "(e.g. outputs/05_your_own_images/model.pt).")
    if not folder.is_dir():
        raise FileNotFoundError(f"No folder at {folder}: pass the folder of images to predict.")
    if top_k < 1:
        raise ValueError(f"--top-k must be at least 1, not {top_k}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"--batch-size must be a whole number >= 1, not {batch_size!r}.")

    import torch

    from course_utils import checkpoints, datasets, environment, evaluation, files, transforms
    from course_utils.checkpoint_checks import CheckpointError

    files.check_writable_file(output)  # a folder, a device, a link or a read-only folder: refused before the work
    if output.is_file() and output.suffix.lower() != ".csv":  # a typo must not replace model.pt or a photo
        raise FileExistsError(f"--output {output} exists and is not a .csv file: predictions replace only an "
                              "earlier CSV; choose a new name, e.g. predictions.csv.")
    started = time.perf_counter()
    target = "the chosen device"
    try:
        model, metadata = checkpoints.build_model_from_checkpoint(checkpoint)
        target = environment.select_device(device)
        model.to(target)
        classes = metadata["classes"]
        if not metadata.get("input_size") or not metadata.get("mean") or not metadata.get("std"):
            raise CheckpointError(f"{checkpoint} does not record its input size and normalisation; "
                             "save it with save_checkpoint(..., mean=..., std=..., input_size=...).")
        transform = transforms.eval_transform(mean=metadata["mean"], std=metadata["std"],
                                              image_size=metadata["input_size"])
        table = evaluation.predict_folder(model, folder, transform, classes, None, device=target,
                                          batch_size=batch_size, top_k=top_k, verbose=verbose)
    except (MemoryError, torch.OutOfMemoryError):
        raise MemoryError(f"Out of memory on {target} while predicting {folder} with --batch-size {batch_size}: "
                          "use a smaller --batch-size, close other programs, or try --device cpu.") from None
    evaluation.write_predictions_csv(table, output)
    seconds = time.perf_counter() - started
    if verbose:
        counts = Counter(table["predicted_class"])
        shown = ", ".join(f"{name} {counts[name]}" for name in classes if counts[name])
        found, unreadable = datasets.scan_files(folder)
        skipped = len(found) + len(unreadable) - len(table)
        print(f"Predicted {len(table)} image(s) with {metadata['arch']} ({len(classes)} classes) on {target} "
              f"in {seconds:.1f} s" + (f", {skipped} file(s) skipped" if skipped else "") + f": {shown}.")
        print(f"Wrote {output}")
    return table
