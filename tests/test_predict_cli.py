"""`course predict` end to end: a checkpoint a test saves, a folder with good and bad files, the CSV."""

from __future__ import annotations

import pandas as pd
import torch
from helpers import write_image

from course_tools.cli import main
from course_utils import checkpoints, evaluation, models, transforms

CLASSES = ["cat", "dog", "fox"]
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _checkpoint(tmp_path):
    torch.manual_seed(0)
    model = models.ScratchCNN(len(CLASSES), channels=(8, 16))
    path = checkpoints.save_checkpoint(tmp_path / "model.pt", model, arch="scratch_cnn", classes=CLASSES,
                                       mean=MEAN, std=STD, input_size=32)
    return path, model.eval()


def _folder(tmp_path):
    folder = tmp_path / "to predict"
    for index in range(5):
        write_image(folder / f"photo {index}.png", (20 + 7 * index, 30), ((50 * index) % 256, 90, 200 - 30 * index))
    write_image(folder / "sub" / "deeper.jpg", (40, 40), (10, 200, 10))
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    data = (folder / "photo 0.png").read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    (folder / ".DS_Store").write_bytes(b"\0\0")
    return folder


def test_predict_writes_the_csv_and_reports_bad_files(tmp_path, capsys):
    checkpoint, model = _checkpoint(tmp_path)
    folder = _folder(tmp_path)
    output = tmp_path / "out" / "predictions.csv"
    output.parent.mkdir()
    assert main(["predict", str(checkpoint), str(folder), "--output", str(output), "--top-k", "2",
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(output)
    assert list(table.columns) == ["file", "predicted_class", "confidence", "top_1_class", "top_1_probability",
                                   "top_2_class", "top_2_probability"]
    assert sorted(table["file"]) == sorted([f"photo {i}.png" for i in range(5)] + ["sub/deeper.jpg"])
    assert (table["predicted_class"] == table["top_1_class"]).all()
    assert (table["top_1_probability"] >= table["top_2_probability"]).all()
    assert table["confidence"].between(1 / len(CLASSES), 1).all()
    # The same numbers as the model itself gives for each image.
    expected = evaluation.predict_image(model, folder / "photo 3.png",
                                        transforms.eval_transform(mean=MEAN, std=STD, image_size=32), CLASSES)
    row = table.set_index("file").loc["photo 3.png"]
    assert row["predicted_class"] == expected.index[0]
    assert abs(row["confidence"] - expected.iloc[0]) < 1e-5 and row["top_2_class"] == expected.index[1]
    # Bad files are reported in one line, each named; hidden files are ignored silently.
    warnings = [line for line in printed.splitlines() if "kipped" in line and "of" in line and "⚠️" in line]
    assert len(warnings) == 1, printed
    assert all(name in warnings[0] for name in ("empty.png", "notes.txt", "cut.png"))
    assert ".DS_Store" not in printed
    assert "Predicted 6 image(s)" in printed and "3 file(s) skipped" in printed and str(output) in printed
    assert not list(output.parent.glob("*.tmp*"))  # written atomically: no temporary file left behind


def test_predict_exit_codes(tmp_path, capsys):
    checkpoint, _ = _checkpoint(tmp_path)
    folder = _folder(tmp_path)
    output = tmp_path / "predictions.csv"
    assert main(["predict", str(tmp_path / "missing.pt"), str(folder), "--output", str(output)]) == 2
    assert "No checkpoint at" in capsys.readouterr().err
    assert main(["predict", str(checkpoint), str(tmp_path / "nowhere"), "--output", str(output)]) == 2
    assert "No folder at" in capsys.readouterr().err
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    assert main(["predict", str(broken), str(folder), "--output", str(output)]) == 2
    assert "broken.pt" in capsys.readouterr().err
    empty = tmp_path / "nothing here"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images")
    assert main(["predict", str(checkpoint), str(empty), "--output", str(output)]) == 2
    assert "No usable images" in capsys.readouterr().err
    assert not output.exists()  # nothing half-written after a failure
