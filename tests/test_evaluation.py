"""Predictions, reports and the out-of-distribution helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import v2

from course_utils.evaluation import (
    auroc,
    classification_table,
    max_softmax_scores,
    ood_summary,
    predict,
    predict_folder,
    predict_image,
    threshold_keeping,
)

CLASSES = ["stop", "give_way", "no_entry"]
TRANSFORM = v2.Compose([v2.ToImage(), v2.Resize((16, 16)), v2.ToDtype(torch.float32, scale=True)])


class MeanColour(nn.Module):
    """A readable 'model': class scores are a linear function of the image's mean colour."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(3, 3)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(3) * 5)
            self.linear.bias.zero_()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(self.pool(images).flatten(1))


def test_predict_collects_logits_probabilities_and_labels():
    inputs = torch.rand(10, 3, 8, 8)
    targets = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    model = MeanColour()
    predictions = predict(model, DataLoader(TensorDataset(inputs, targets), batch_size=4))
    expected = model(inputs).detach()
    assert torch.allclose(predictions.logits, expected)
    assert torch.allclose(predictions.probabilities.sum(dim=1), torch.ones(10))
    assert torch.equal(predictions.predicted, expected.argmax(dim=1))
    assert predictions.accuracy == pytest.approx((expected.argmax(dim=1) == targets).float().mean().item())
    assert torch.allclose(predictions.confidence, predictions.probabilities.max(dim=1).values)
    predictions.logits.requires_grad_(True)  # ordinary tensors, not inference-mode ones
    unlabeled = predict(model, DataLoader(inputs, batch_size=4))
    assert unlabeled.targets is None and torch.equal(unlabeled.predicted, predictions.predicted)
    with pytest.raises(ValueError, match="no true labels"):
        _ = unlabeled.accuracy


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK"])
def test_predict_image_accepts_any_mode_and_size(tmp_path, mode):
    image = Image.new("RGB", (13, 7), (200, 30, 30)).convert(mode)
    path = tmp_path / f"photo_{mode.replace(';', '')}.{'jpg' if mode == 'CMYK' else 'png'}"
    image.save(path)
    result = predict_image(MeanColour(), path, TRANSFORM, CLASSES)
    assert isinstance(result, pd.Series) and set(result.index) == set(CLASSES)
    assert result.is_monotonic_decreasing and result.sum() == pytest.approx(1.0)
    if mode in ("RGBA", "P", "CMYK"):  # colour survives: red wins
        assert result.index[0] == "stop"


def test_predict_image_puts_transparent_pixels_on_white(tmp_path):
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(tmp_path / "transparent.png")
    Image.new("RGB", (20, 20), (255, 255, 255)).save(tmp_path / "white.png")
    model = MeanColour()
    transparent = predict_image(model, tmp_path / "transparent.png", TRANSFORM, CLASSES)
    white = predict_image(model, tmp_path / "white.png", TRANSFORM, CLASSES)
    assert np.allclose(transparent.sort_index().values, white.sort_index().values)


def test_predict_folder_writes_the_csv_and_skips_bad_files(tmp_path, capsys):
    folder = tmp_path / "unlabeled"
    (folder / "more").mkdir(parents=True)
    Image.new("RGB", (30, 20), (250, 0, 0)).save(folder / "a_red.png")
    Image.new("L", (40, 40), 128).save(folder / "more" / "b_gray.png")
    Image.new("RGB", (25, 25), (0, 0, 250)).save(folder / "c_blue.jpg")
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    good = folder / "d.png"
    Image.new("RGB", (30, 30), (0, 250, 0)).save(good)
    (folder / "truncated.png").write_bytes(good.read_bytes()[:60])
    good.unlink()
    csv_path = tmp_path / "out" / "submission.csv"
    model = MeanColour()
    table = predict_folder(model, folder, TRANSFORM, CLASSES, csv_path, verbose=False)
    assert list(table.columns) == ["file", "predicted_class", "confidence"]
    assert table["file"].tolist() == ["a_red.png", "c_blue.jpg", "more/b_gray.png"]
    assert table["predicted_class"].tolist()[:2] == ["stop", "no_entry"]
    single = predict_image(model, folder / "c_blue.jpg", TRANSFORM, CLASSES)
    assert table["confidence"].iloc[1] == pytest.approx(single.iloc[0], rel=1e-5)
    written = pd.read_csv(csv_path)
    pd.testing.assert_frame_equal(written, table)
    assert sorted(p.name for p in csv_path.parent.iterdir()) == ["submission.csv"]
    lines = [line for line in capsys.readouterr().out.splitlines() if "kipped" in line]
    assert len(lines) == 1 and "3" in lines[0]


def test_predict_folder_with_worker_processes_gives_the_same_table_and_skips_in_the_workers(tmp_path, capsys):
    # the images are decoded in a DataLoader's worker processes; a bad file there is skipped, not a crash
    folder = tmp_path / "unlabeled"
    folder.mkdir()
    for number in range(7):
        Image.new("RGB", (20, 20), (40 * number, 250 - 30 * number, 90)).save(folder / f"image{number}.png")
    (folder / "image3.png").write_bytes(b"")  # broken, in the middle of a batch
    model = MeanColour()
    in_process = predict_folder(model, folder, TRANSFORM, CLASSES, batch_size=2, num_workers=0, top_k=2,
                                verbose=False)
    in_workers = predict_folder(model, folder, TRANSFORM, CLASSES, batch_size=2, num_workers=2, top_k=2,
                                verbose=False)
    pd.testing.assert_frame_equal(in_workers, in_process)
    assert in_process["file"].tolist() == [f"image{number}.png" for number in (0, 1, 2, 4, 5, 6)]
    assert capsys.readouterr().out.count("Skipped 1 of 7 files") == 2


def test_predict_folder_where_no_image_could_be_read_gives_an_empty_table(tmp_path, capsys):
    folder = tmp_path / "unlabeled"
    folder.mkdir()
    Image.new("RGB", (30, 30), (0, 250, 0)).save(folder / "green.png")

    def refusing(image):  # e.g. a transform for another image mode
        raise ValueError("not for this image")

    table = predict_folder(MeanColour(), folder, refusing, CLASSES, verbose=False)
    assert table.empty and list(table.columns) == ["file", "predicted_class", "confidence"]
    out = capsys.readouterr().out
    assert "Skipped 1 of 1 files" in out and "green.png (ValueError)" in out
    assert len(predict(MeanColour(), [])) == 0  # an empty loader: no predictions, not an error


def test_classification_table_has_per_class_rows_and_averages():
    targets = [0, 0, 0, 1, 1, 2]
    predicted = [0, 0, 1, 1, 1, 1]
    table = classification_table(torch.tensor(targets), np.array(predicted), CLASSES)
    assert list(table.index) == [*CLASSES, "macro avg", "weighted avg"]
    assert list(table.columns) == ["precision", "recall", "f1", "support"]
    assert table.loc["stop", "recall"] == pytest.approx(2 / 3)
    assert table.loc["give_way", "precision"] == pytest.approx(2 / 4)
    assert table.loc["no_entry", "precision"] == 0.0  # never predicted: 0, not an error
    assert table["support"].tolist() == [3, 2, 1, 6, 6]
    assert table.attrs["accuracy"] == pytest.approx(4 / 6)


def test_auroc_on_known_cases():
    known, unknown = np.array([0.9, 0.8, 0.95]), np.array([0.1, 0.3, 0.2, 0.4])
    assert auroc(known, unknown) == 1.0
    assert auroc(unknown, known) == 0.0
    assert auroc([0.5, 0.5], [0.5, 0.5, 0.5]) == 0.5
    assert auroc(torch.tensor([0.9, 0.2]), torch.tensor([0.5])) == 0.5


def test_max_softmax_scores_takes_the_top_probability():
    probabilities = torch.tensor([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])
    assert np.allclose(max_softmax_scores(probabilities), [0.7, 0.4])
    with pytest.raises(ValueError, match="shape"):
        max_softmax_scores(torch.tensor([0.7, 0.3]))


def test_threshold_keeping_keeps_the_requested_share():
    scores = np.arange(1, 101) / 100  # 0.01 .. 1.00
    threshold = threshold_keeping(scores, keep=0.95)
    assert threshold == pytest.approx(0.06)
    assert np.sum(scores >= threshold) == 95
    assert threshold_keeping(scores, keep=1.0) == pytest.approx(0.01)
    rng = np.random.default_rng(0)
    for keep in (0.5, 0.8, 0.9, 0.99):
        random_scores = rng.random(37)
        threshold = threshold_keeping(random_scores, keep)
        assert np.mean(random_scores >= threshold) >= keep
        assert np.mean(random_scores > threshold) < keep  # the highest such threshold
    with pytest.raises(ValueError, match="keep"):
        threshold_keeping(scores, keep=0.0)


def test_ood_summary_reports_what_the_threshold_does():
    known = np.arange(1, 101) / 100
    unknown = np.array([0.01, 0.02, 0.5, 0.9])
    summary = ood_summary(known, unknown, keep=0.95)
    assert summary["threshold"] == pytest.approx(0.06)
    assert summary["known_kept"] == pytest.approx(0.95)
    assert summary["unknown_rejected"] == pytest.approx(0.5)
    assert summary["unknown_accepted"] == pytest.approx(0.5)
    assert summary["auroc"] == pytest.approx(auroc(known, unknown))
