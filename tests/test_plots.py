"""Every plot draws with the non-interactive backend and holds the expected artists, titles and labels."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.text  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from course_utils import plots  # noqa: E402

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
CLASSES = ["priority_road", "give_way", "stop", "no_entry"]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def image_count(figure: Figure) -> int:
    return sum(len(ax.images) for ax in figure.axes)


def titles(figure: Figure) -> list[str]:
    return [ax.get_title() for ax in figure.axes if ax.get_title()]


def all_texts(figure: Figure) -> list[str]:
    return [text.get_text() for ax in figure.axes for text in ax.texts]


@pytest.fixture
def image_files(tmp_path):
    paths = []
    for index, mode in enumerate(["RGB", "L", "RGBA", "P"]):
        path = tmp_path / f"image_{index}.png"
        Image.new(mode, (20 + index, 16), color=100).save(path)
        paths.append(path)
    return paths


def test_image_grid_from_files_uses_titles_and_hides_spare_cells(image_files):
    figure = plots.plot_image_grid(image_files, titles=["a", "b", "c", "d"], columns=3)
    assert isinstance(figure, Figure)
    assert image_count(figure) == 4
    assert len(figure.axes) == 6  # 2 rows x 3 columns
    assert titles(figure) == ["a", "b", "c", "d"]
    assert all(ax.images[0].get_array().shape[-1] == 3 for ax in figure.axes if ax.images)  # all RGB


def test_image_grid_undoes_normalisation_of_a_tensor_batch():
    pixels = torch.rand(3, 3, 8, 8)
    normalised = (pixels - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    figure = plots.plot_image_grid(normalised, mean=MEAN, std=STD)
    assert image_count(figure) == 3
    shown = np.asarray(figure.axes[0].images[0].get_array())
    assert shown.shape == (8, 8, 3)
    np.testing.assert_allclose(shown, pixels[0].permute(1, 2, 0).numpy(), atol=1e-5)


def test_image_grid_clips_out_of_range_values_and_rejects_bad_input():
    figure = plots.plot_image_grid(np.full((2, 4, 4, 3), 3.0, dtype=np.float32))
    assert np.asarray(figure.axes[0].images[0].get_array()).max() == 1.0
    with pytest.raises(ValueError, match="no images"):
        plots.plot_image_grid([])
    with pytest.raises(ValueError, match="one title per image"):
        plots.plot_image_grid(np.zeros((2, 4, 4, 3)), titles=["only one"])


def test_class_counts_sorted_with_labels_vertical_for_few_classes():
    figure = plots.plot_class_counts({"stop": 5, "give_way": 12, "no_entry": 1})
    ax = figure.axes[0]
    assert len(ax.patches) == 3
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == [12, 5, 1]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["give_way", "stop", "no_entry"]
    assert [text.get_text() for text in ax.texts] == ["12", "5", "1"]
    assert ax.get_title() == "Images per class"


def test_class_counts_from_labels_is_horizontal_for_many_classes():
    classes = [f"class_{number}" for number in range(43)]
    labels = [number % 40 for number in range(200)]  # three classes have no image
    figure = plots.plot_class_counts(labels, classes)
    ax = figure.axes[0]
    assert len(ax.patches) == 43
    widths = [patch.get_width() for patch in ax.patches]
    assert widths == sorted(widths, reverse=True) and sum(widths) == 200 and widths[-1] == 0
    assert all(patch.get_height() < 1 for patch in ax.patches)  # bars lie horizontally


def test_class_counts_stacks_the_parts_of_a_split_summary():
    summary = pd.DataFrame({"train": [8, 3], "val": [2, 1], "test": [2, 1]}, index=["stop", "give_way"])
    figure = plots.plot_class_counts(summary)
    ax = figure.axes[0]
    assert len(ax.patches) == 6
    assert [text.get_text() for text in ax.texts] == ["12", "5"]  # totals on top
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["train", "val", "test"]


def test_image_sizes_from_pairs_and_paths_have_median_lines(image_files):
    figure = plots.plot_image_sizes([(30, 40), (50, 40), (70, 60)])
    joint = figure.axes[0]
    assert len(joint.collections[0].get_offsets()) == 3
    assert "median 50" in joint.get_xlabel() and "median 40" in joint.get_ylabel()
    dashed = [line for line in joint.lines if line.get_linestyle() == "--"]
    assert len(dashed) == 2
    figure = plots.plot_image_sizes(image_files)
    assert "4 images" in figure.texts[0].get_text()
    assert "median 21.5" in figure.axes[0].get_xlabel()


def test_augmentations_show_original_and_count_versions(image_files):
    calls = []

    def transform(image):
        calls.append(image.size)
        return torch.zeros(3, 10, 10)  # normalised zeros -> the mean colour

    figure = plots.plot_augmentations(image_files[0], transform, count=5, mean=MEAN, std=STD)
    assert len(calls) == 5
    assert image_count(figure) == 6
    assert titles(figure)[0] == "original" and titles(figure)[-1] == "augmented 5"
    np.testing.assert_allclose(np.asarray(figure.axes[1].images[0].get_array())[0, 0], MEAN, atol=1e-6)


def history_table(epochs: int = 5, best: int = 3) -> pd.DataFrame:
    epoch = np.arange(1, epochs + 1)
    val_accuracy = np.where(epoch == best, 0.9, 0.5 + 0.01 * epoch)
    return pd.DataFrame({"epoch": epoch, "train_loss": 1 / epoch, "val_loss": 1.2 / epoch,
                         "train_accuracy": 0.6 + 0.05 * epoch, "val_accuracy": val_accuracy})


def test_history_has_two_panels_integer_ticks_and_best_epoch():
    figure = plots.plot_history(history_table())
    loss_ax, accuracy_ax = figure.axes
    assert loss_ax.get_title() == "Loss" and accuracy_ax.get_title() == "Accuracy"
    figure.canvas.draw()
    for ax in (loss_ax, accuracy_ax):
        ticks = [tick for tick in ax.get_xticks() if 1 <= tick <= 5]
        assert ticks and all(float(tick).is_integer() for tick in ticks)
    legend = [text.get_text() for text in accuracy_ax.get_legend().get_texts()]
    assert legend == ["train", "validation", "best epoch 3 (90.0%)"]
    star = accuracy_ax.lines[-1]
    assert star.get_marker() == "*" and list(star.get_xdata()) == [3]


def test_history_marks_the_epoch_fit_kept_when_accuracies_tie():
    table = history_table(best=2)
    table.loc[table["epoch"] == 4, "val_accuracy"] = 0.9  # a tie; fit kept epoch 4 (lower validation loss)
    table.attrs["best_epoch"] = 4
    legend = [text.get_text() for text in plots.plot_history(table).axes[1].get_legend().get_texts()]
    assert legend[-1] == "best epoch 4 (90.0%)"


def test_history_compares_several_runs():
    figure = plots.plot_history({"feature extraction": history_table(best=2),
                                 "fine-tuning": history_table(best=4)}, title="Two runs")
    legend = [text.get_text() for text in figure.legends[0].get_texts()]  # one legend for both panels
    assert "feature extraction validation" in legend and "fine-tuning train" in legend
    assert "feature extraction best epoch 2 (90.0%)" in legend
    assert "fine-tuning best epoch 4 (90.0%)" in legend
    assert figure.texts[0].get_text() == "Two runs"


def test_confusion_matrix_shows_counts_and_row_percentages():
    targets = [0] * 5 + [1] * 2 + [2, 3]
    predicted = [0, 0, 0, 0, 1] + [1, 1] + [2, 3]
    figure = plots.plot_confusion_matrix(targets, predicted, CLASSES)
    ax = figure.axes[0]
    texts = [text.get_text() for text in ax.texts]
    assert len(texts) == 16
    assert "4\n80%" in texts and "1\n20%" in texts and "2\n100%" in texts
    assert [label.get_text() for label in ax.get_yticklabels()] == CLASSES
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert "88.9%" in ax.get_title()  # 8 of 9 right


def test_confusion_matrix_stays_readable_for_43_classes():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 43, 300)
    predicted = np.where(rng.random(300) < 0.8, targets, rng.integers(0, 43, 300))
    classes = [f"class_{number}" for number in range(43)]
    figure = plots.plot_confusion_matrix(targets, predicted, classes)
    ax = figure.axes[0]
    texts = [text.get_text() for text in ax.texts if text.get_text()]
    nonzero = len({(t, p) for t, p in zip(targets, predicted, strict=True)})
    assert len(texts) == nonzero and all("%" not in text for text in texts)
    assert all(label.get_rotation() == 90 for label in ax.get_xticklabels())
    assert figure.get_size_inches()[1] > 10
    few = plots.plot_confusion_matrix([0, 1], [0, 1], CLASSES, normalize=None)
    assert "1" in [text.get_text() for text in few.axes[0].texts]
    with pytest.raises(ValueError, match="normalize"):
        plots.plot_confusion_matrix([0], [0], CLASSES, normalize="column")


def test_classification_report_is_a_table_with_averages():
    targets = [0, 0, 1, 1, 2, 2, 3, 3]
    predicted = [0, 0, 1, 0, 2, 2, 3, 3]
    figure = plots.plot_classification_report(targets, predicted, CLASSES)
    table = figure.axes[0].tables[0]
    cells = {key: cell.get_text().get_text() for key, cell in table.get_celld().items()}
    assert [cells[(0, column)] for column in range(4)] == ["precision", "recall", "f1", "support"]
    row_labels = [cells[(row, -1)] for row in range(1, 8)]
    assert row_labels == CLASSES + ["accuracy", "macro avg", "weighted avg"]
    assert cells[(1, 0)] == "0.67" and cells[(1, 1)] == "1.00" and cells[(1, 3)] == "2"  # priority road
    assert cells[(5, 2)] == "0.88" and cells[(5, 3)] == "8"  # accuracy 7 of 8


def test_classification_report_frame_matches_hand_computation():
    frame = plots._classification_report_frame([0, 0, 1], [0, 1, 1], ["a", "b"])
    assert frame.loc["a", "recall"] == pytest.approx(0.5)
    assert frame.loc["b", "precision"] == pytest.approx(0.5)
    assert frame.loc["weighted avg", "support"] == 3


def test_predictions_mark_mistakes_with_a_cross_and_a_colour_and_show_confidence():
    images = torch.zeros(3, 3, 6, 6)
    probabilities = np.array([[0.9, 0.1, 0, 0], [0.2, 0.7, 0.1, 0], [0.05, 0.05, 0.85, 0.05]])
    figure = plots.plot_predictions(images, [0, 2, 2], [0, 1, 2], CLASSES, probabilities=probabilities)
    axes = [ax for ax in figure.axes if ax.images]
    assert len(axes) == 3
    assert axes[0].get_title() == "✓ priority_road /\npriority_road (90%)"
    assert axes[1].get_title() == "✗ stop / give_way (70%)"
    colors = [mcolors.to_hex(ax.title.get_color()) for ax in axes]
    assert colors[1] == mcolors.to_hex(plots.MISTAKE_COLOR)
    assert colors[0] == colors[2] == mcolors.to_hex(plots.CORRECT_COLOR)
    assert "1 of 3 wrong, marked ✗" in figure.texts[0].get_text()


def test_misclassified_shows_only_mistakes_most_confident_first(image_files):
    targets, predicted = [0, 1, 2, 3], [1, 1, 3, 2]
    confidence = [0.6, 0.99, 0.7, 0.95]
    figure = plots.plot_misclassified(image_files, targets, predicted, CLASSES, probabilities=confidence)
    shown = [ax.get_title() for ax in figure.axes if ax.images]
    assert shown == ["✗ no_entry / stop (95%)", "✗ stop / no_entry (70%)", "✗ priority_road /\ngive_way (60%)"]
    assert all(mcolors.to_hex(ax.title.get_color()) == mcolors.to_hex(plots.MISTAKE_COLOR)
               for ax in figure.axes if ax.images)
    limited = plots.plot_misclassified(image_files, targets, predicted, CLASSES, max_images=1)
    assert image_count(limited) == 1


def test_misclassified_says_so_when_there_is_no_mistake():
    figure = plots.plot_misclassified(np.zeros((2, 4, 4, 3)), [0, 1], [0, 1], CLASSES)
    assert image_count(figure) == 0
    assert "No mistakes" in all_texts(figure)[0]


def test_class_confidence_highlights_top_class_and_shows_image():
    probabilities = pd.Series({"stop": 0.1, "give_way": 0.7, "no_entry": 0.15, "priority_road": 0.05})
    figure = plots.plot_class_confidence(probabilities, image=np.zeros((5, 5, 3), dtype=np.uint8))
    image_ax, bar_ax = figure.axes
    assert len(image_ax.images) == 1
    assert len(bar_ax.patches) == 4
    assert [label.get_text() for label in bar_ax.get_yticklabels()][0] == "give_way"
    colors = [mcolors.to_hex(patch.get_facecolor()) for patch in bar_ax.patches]
    assert colors[0] != colors[1] and len(set(colors[1:])) == 1
    assert bar_ax.get_title() == "Prediction: give_way (70.0%)"
    assert "70.0%" in [text.get_text() for text in bar_ax.texts]
    alone = plots.plot_class_confidence({"a": 0.4, "b": 0.6}, title="One image")
    assert len(alone.axes) == 1 and alone.axes[0].get_title() == "One image"


def test_score_histograms_overlay_groups_with_threshold_line():
    known, unknown = np.linspace(0.6, 1.0, 20), np.linspace(0.2, 0.7, 10)
    figure = plots.plot_score_histograms(known, unknown, threshold=0.65, bins=10)
    ax = figure.axes[0]
    assert len(ax.patches) == 20  # 10 bins per group
    heights = np.array([patch.get_height() for patch in ax.patches])
    assert heights[:10].sum() == pytest.approx(1) and heights[10:].sum() == pytest.approx(1)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["known (20 images)", "unknown (10 images)",
                      "threshold 0.65: keeps 85% of known, rejects 90% of unknown"]  # 17 of 20, 9 of 10
    assert [line.get_xdata()[0] for line in ax.lines] == [0.65]


def test_roc_curve_reports_auroc_for_one_or_several_methods():
    figure = plots.plot_roc_curve(np.array([0.9, 0.8, 0.95]), np.array([0.1, 0.3]))
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == ["AUROC = 1.00", "chance (AUROC = 0.50)"]
    curve = figure.axes[0].lines[0]
    # perfect separation: every known image is accepted before any unknown one
    assert (0.0, 1.0) in set(zip(curve.get_xdata(), curve.get_ydata(), strict=True))
    assert figure.axes[0].get_xlabel() == "unknown images accepted (false positive rate)"
    figure = plots.plot_roc_curve({"softmax": ([0.9, 0.4], [0.5, 0.1]), "flipped": ([0.1], [0.9])})
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == ["softmax (AUROC = 0.75)", "flipped (AUROC = 0.00)", "chance (AUROC = 0.50)"]
    chance = figure.axes[0].lines[-1]
    assert list(chance.get_xdata()) == [0, 1] and list(chance.get_ydata()) == [0, 1]
    flipped = figure.axes[0].lines[1]
    assert list(flipped.get_xdata()) == [0.0, 1.0, 1.0] and list(flipped.get_ydata()) == [0.0, 0.0, 1.0]


def test_comparison_has_one_panel_per_metric_with_formatted_labels():
    results = {"feature extraction": {"test_accuracy": 0.91, "seconds": 12.0, "trainable_parameters": 2052},
               "fine-tuning": {"test_accuracy": 0.97, "seconds": 80.5, "trainable_parameters": 11_178_564}}
    figure = plots.plot_comparison(results)
    assert [ax.get_title() for ax in figure.axes] == ["test accuracy", "seconds", "trainable parameters"]
    assert [text.get_text() for text in figure.axes[0].texts] == ["91.0%", "97.0%"]
    assert [text.get_text() for text in figure.axes[1].texts] == ["12.0 s", "80.5 s"]
    assert [text.get_text() for text in figure.axes[2].texts] == ["2,052", "11.18M"]
    assert figure.axes[2].get_yscale() == "log"
    frame = pd.DataFrame({"approach": ["a", "b"], "test_accuracy": [0.5, 0.6]})
    assert len(plots.plot_comparison(frame).axes[0].patches) == 2


def test_score_histogram_keeps_the_score_name_and_its_legend_off_the_bars():
    from course_utils.plots import plot_score_histograms

    figure = plot_score_histograms(np.linspace(0.5, 1, 50), np.linspace(0, 0.6, 30), threshold=0.7,
                                   score_name="1 - P(unknown) (five-class model)")
    ax = figure.axes[0]
    assert ax.get_title() == "1 - P(unknown) (five-class model): known vs unknown"
    figure.canvas.draw()
    legend_box = ax.get_legend().get_window_extent()
    assert legend_box.y1 <= ax.get_window_extent().y0  # below the axes: it hides no bar
    plt.close(figure)


def test_comparison_draws_interval_bars_where_given():
    frame = pd.DataFrame({"approach": ["a", "b"], "test_accuracy": [0.5, 0.8], "seconds": [1.0, 2.0]})
    figure = plots.plot_comparison(frame, intervals={"test_accuracy": [(0.4, 0.65), None]})
    accuracy_axes, seconds_axes = figure.axes
    (bars,) = [collection for collection in accuracy_axes.collections]
    segments = bars.get_segments()
    assert [tuple(np.round(segment[:, 1], 3)) for segment in segments] == [(0.4, 0.65), (0.8, 0.8)]
    assert "95% interval" in accuracy_axes.get_title() and not seconds_axes.collections
    with pytest.raises(ValueError, match="2 approaches"):
        plots.plot_comparison(frame, intervals={"test_accuracy": [(0.4, 0.6)]})
    plt.close("all")


def test_feature_projection_draws_one_panel_per_model_with_every_class():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 10)
    separated = rng.normal(size=(30, 8)) + labels[:, None] * 10.0
    figure = plots.plot_feature_projection({"tangled": rng.normal(size=(30, 8)), "separated": separated}, labels,
                                           ["a", "b", "c"])
    assert [ax.get_title() for ax in figure.axes] == ["tangled", "separated"]
    assert len(figure.axes[1].collections) == 3  # one cloud of points per class
    clouds = [collection.get_offsets() for collection in figure.axes[1].collections]
    centres = np.array([cloud.mean(axis=0) for cloud in clouds])
    spread = max(np.linalg.norm(cloud - centre, axis=1).max() for cloud, centre in zip(clouds, centres, strict=True))
    gaps = [np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) > spread  # well-separated features stay separated in the projection
    plt.close(figure)


def test_activation_maps_say_how_many_cells_the_map_really_has():
    images, cams = torch.rand(2, 3, 20, 20), torch.rand(2, 20, 20)
    figure = plots.plot_activation_maps(images, cams, ["a", "b"], title="Mistakes", map_size=(7, 7))
    assert figure._suptitle.get_text() == "Mistakes\nmaps of 7 x 7 cells, stretched to the image"
    untitled = plots.plot_activation_maps(images, cams, map_size=(8, 6))
    assert untitled._suptitle.get_text() == "maps of 8 x 6 cells, stretched to the image"
    assert plots.plot_activation_maps(images, cams)._suptitle is None  # as before when no size is given


def test_the_learning_rate_finder_plot_has_a_log_axis_and_marks_the_suggestion():
    from course_utils.training import LearningRateFinderResult

    result = LearningRateFinderResult(rates=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], losses=[1.0, 0.8, 0.4, 0.3, 2.0],
                                      suggestion=1e-2, steepest=1e-3, diverged=True)
    figure = plots.plot_learning_rate_finder(result)
    ax = figure.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "learning rate (log scale)"
    curve = ax.lines[0]
    assert list(curve.get_xdata()) == result.rates and list(curve.get_ydata()) == result.losses
    marker = [line for line in ax.lines[1:] if list(line.get_xdata()) == [1e-2]]
    assert len(marker) == 1 and list(marker[0].get_ydata()) == pytest.approx([0.4])  # on the curve
    assert "suggested: 1.0e-02" in [text.get_text() for text in ax.get_legend().get_texts()]
    assert ax.get_ylim()[1] < 2.0  # the diverging tail does not squash the useful part
    silent = LearningRateFinderResult(rates=[1e3, 2e3], losses=[0.7, 5.0], suggestion=None, steepest=None,
                                      diverged=True)
    figure = plots.plot_learning_rate_finder(silent)
    assert "no suggestion" in figure.axes[0].get_title() and len(figure.axes[0].lines) == 1


def test_near_duplicate_pairs_are_shown_side_by_side_with_their_similarity(tmp_path):
    from course_utils.near_duplicates import NearDuplicates

    paths = [tmp_path / f"{name}.png" for name in ("test0", "train3", "test1", "train0")]
    for path in paths:
        Image.new("RGB", (12, 12), (90, 20, 200)).save(path)
    pairs = pd.DataFrame({"test_index": [0, 1], "train_index": [3, 0], "similarity": [0.99, 0.97],
                          "test_path": [paths[0], paths[2]], "train_path": [paths[1], paths[3]]})
    report = NearDuplicates(pairs, threshold=0.95, test_images=10)
    figure = plots.plot_near_duplicates(report)
    assert image_count(figure) == 4
    assert titles(figure) == ["test 0\ncosine 0.990", "train 3\n", "test 1\ncosine 0.970", "train 0\n"]
    assert figure._suptitle.get_text() == "The 2 closest of 2 near-duplicate pairs (test | training)"
    assert image_count(plots.plot_near_duplicates(report, count=1)) == 2
    none = plots.plot_near_duplicates(NearDuplicates(pairs.iloc[:0], 0.95, 10))
    assert image_count(none) == 0 and "No test image has a near-duplicate" in all_texts(none)[0]
    with pytest.raises(ValueError, match="pass train_samples and test_samples"):
        plots.plot_near_duplicates(NearDuplicates(pairs.drop(columns=["test_path", "train_path"]), 0.95, 10))


def test_a_fine_tune_history_shows_where_stage_two_begins():
    history = pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "stage": [1, 1, 1, 2, 2],
                            "train_loss": [1.0, 0.8, 0.7, 0.5, 0.4], "val_loss": [1.1, 0.9, 0.8, 0.6, 0.5],
                            "train_accuracy": [0.5, 0.6, 0.7, 0.8, 0.9], "val_accuracy": [0.5, 0.6, 0.65, 0.8, 0.85]})
    history.attrs["best_epoch"] = 5
    figure = plots.plot_history(history)
    for ax in figure.axes:
        dashed = [line for line in ax.lines if line.get_linestyle() == "--" and line.get_color() == "gray"]
        assert len(dashed) == 1 and list(dashed[0].get_xdata()) == [3.5, 3.5]
    assert "stage 2: body unfrozen" in [text.get_text() for text in figure.axes[1].get_legend().get_texts()]
    plain = plots.plot_history(history.drop(columns="stage"))
    assert not [line for ax in plain.axes for line in ax.lines if line.get_color() == "gray"
                and line.get_linestyle() == "--"]


def test_roc_curve_marks_each_operating_point_with_its_shares():
    figure = plots.plot_roc_curve({"weighted": ([0.9, 0.8, 0.4], [0.5, 0.1]), "unweighted": ([0.9, 0.7], [0.2])},
                                  operating_points={"weighted": (0.25, 0.9), "unweighted": (0.1, 0.8)})
    points = [line for line in figure.axes[0].lines if len(line.get_xdata()) == 1]
    assert [(line.get_xdata()[0], line.get_ydata()[0]) for line in points] == [(0.25, 0.9), (0.1, 0.8)]
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert "weighted: 90.0% known kept, 25.0% unknown accepted" in legend
    assert "unweighted: 80.0% known kept, 10.0% unknown accepted" in legend


def test_reliability_diagram_puts_each_bins_accuracy_at_its_confidence_and_counts_the_images():
    confidences = np.array([0.95] * 10 + [0.55] * 10)
    correct = np.array([1] * 6 + [0] * 4 + [1] * 5 + [0] * 5)
    figure = plots.plot_reliability_diagram(confidences, correct)
    reliability, counts = figure.axes
    diagonal, curve = reliability.lines[:2]
    assert list(diagonal.get_xdata()) == [0, 1] and list(diagonal.get_ydata()) == [0, 1]
    assert list(curve.get_xdata()) == pytest.approx([0.55, 0.95]) and list(curve.get_ydata()) == pytest.approx(
        [0.5, 0.6])
    legend = [text.get_text() for text in reliability.get_legend().get_texts()]
    assert legend == ["perfectly calibrated", "ECE = 20.0%"]
    assert max(counts.lines[0].get_ydata()) == 10 and counts.get_yscale() == "symlog"
    figure = plots.plot_reliability_diagram({"before": (confidences, correct),
                                             "after": (np.full(20, 0.55), correct)})
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == ["perfectly calibrated", "before (ECE = 20.0%)", "after (ECE = 0.0%)"]


def test_reliability_counts_start_at_zero_and_leave_room_above_the_fullest_bin():
    figure = plots.plot_reliability_diagram(np.array([0.99] * 300 + [0.5]), np.array([1] * 300 + [0]))
    low, high = figure.axes[1].get_ylim()
    assert low == 0 and high >= 300


# ------------------------------------------------------------------ readable for everyone (issue 21, item 8)
def _is_reddish_or_greenish(color) -> str | None:
    """"red" or "green" for a saturated colour whose hue is red or green, else None."""
    hue, saturation, value = mcolors.rgb_to_hsv(mcolors.to_rgb(color))
    if saturation < 0.4 or value < 0.3:
        return None
    degrees = hue * 360
    return "red" if degrees < 20 or degrees > 340 else "green" if 80 < degrees < 160 else None


def test_right_and_wrong_differ_by_a_mark_and_by_colours_that_are_not_red_and_green():
    assert {_is_reddish_or_greenish(plots.CORRECT_COLOR), _is_reddish_or_greenish(plots.MISTAKE_COLOR)} != \
        {"red", "green"}
    figure = plots.plot_predictions(torch.zeros(2, 3, 6, 6), [0, 1], [0, 2], CLASSES)
    marks = [ax.get_title()[0] for ax in figure.axes if ax.images]
    assert marks == [plots.CORRECT_MARK, plots.MISTAKE_MARK]


def test_the_palette_has_no_red_green_pair_among_its_first_four_colours():
    hues = [_is_reddish_or_greenish(color) for color in plots.PALETTE[:4]]
    assert not ("red" in hues and "green" in hues)
    assert len(set(plots.MARKERS)) == len(plots.MARKERS)


def test_activation_maps_use_a_perceptual_map_and_mark_right_and_wrong():
    images, cams = torch.rand(2, 3, 20, 20), torch.rand(2, 20, 20)
    figure = plots.plot_activation_maps(images, cams, ["stop\n→ stop", "stop\n→ give_way"], correct=[True, False])
    overlays = [image for ax in figure.axes for image in ax.images if image.get_alpha()]
    assert overlays and {image.get_cmap().name for image in overlays} == {plots.HEAT_MAP}
    assert plots.HEAT_MAP in {"magma", "viridis", "cividis", "inferno", "plasma"}
    shown = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert shown == ["✓ stop\n→ stop", "✗ stop\n→ give_way"]
    colors = [mcolors.to_hex(ax.title.get_color()) for ax in figure.axes if ax.get_title()]
    assert colors == [mcolors.to_hex(plots.CORRECT_COLOR), mcolors.to_hex(plots.MISTAKE_COLOR)]
    with pytest.raises(ValueError, match="2 images but 1 correct flags"):
        plots.plot_activation_maps(images, cams, correct=[True])


def test_the_classification_report_shades_one_hue_not_red_to_green():
    figure = plots.plot_classification_report([0, 0, 1, 1], [0, 1, 1, 1], CLASSES[:2])
    shades = [cell.get_facecolor() for (row, column), cell in figure.axes[0].tables[0].get_celld().items()
              if row > 0 and 0 <= column < 3 and cell.get_text().get_text()]
    assert shades and not any(_is_reddish_or_greenish(shade) for shade in shades)


def test_histograms_tell_the_groups_apart_by_hatching_too():
    figure = plots.plot_score_histograms(np.linspace(0.5, 1, 50), np.linspace(0, 0.6, 30))
    hatches = {patch.get_hatch() for patch in figure.axes[0].patches}
    assert len(hatches) == 2  # known plain, unknown hatched


def _texts_are_readable(figure) -> list[str]:
    """The texts of a figure smaller than MIN_FONT_SIZE."""
    figure.canvas.draw()
    return [f"{text.get_text()!r} at {text.get_fontsize()} pt" for text in figure.findobj(matplotlib.text.Text)
            if text.get_visible() and text.get_text().strip() and text.get_fontsize() < plots.MIN_FONT_SIZE]


def test_no_figure_has_text_below_nine_points():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 43, 300)
    figures = [
        plots.plot_confusion_matrix(targets, targets, [f"class_{number}" for number in range(43)]),
        plots.plot_class_counts({f"class {number}": number + 1 for number in range(20)}),
        plots.plot_history({"a": history_table(best=2), "b": history_table(best=3)}),
        plots.plot_comparison({"a": {"test_accuracy": 0.5}, "b": {"test_accuracy": 0.7}},
                              intervals={"test_accuracy": [(0.4, 0.6), None]}),
        plots.plot_score_histograms(np.linspace(0.5, 1, 50), np.linspace(0, 0.6, 30), threshold=0.7),
        plots.plot_classification_report([0, 1], [0, 1], CLASSES[:2]),
        plots.plot_class_confidence({"a": 0.7, "b": 0.3}),
        plots.plot_feature_projection({"x": rng.normal(size=(9, 4))}, np.repeat([0, 1, 2], 3), ["a", "b", "c"]),
        plots.plot_roc_curve(np.linspace(0.5, 1, 20), np.linspace(0, 0.6, 20)),
    ]
    for figure in figures:
        assert _texts_are_readable(figure) == []


def _overlaps(first, second) -> bool:
    return first.x0 < second.x1 and second.x0 < first.x1 and first.y0 < second.y1 and second.y0 < first.y1


def test_the_legend_of_a_stacked_bar_chart_covers_no_bar():
    summary = pd.DataFrame({"train": [60, 50, 40], "val": [10, 9, 8], "test": [10, 9, 8]},
                           index=["stop", "give_way", "no_entry"])
    figure = plots.plot_class_counts(summary)
    figure.canvas.draw()
    ax = figure.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert not any(_overlaps(legend, patch.get_window_extent()) for patch in ax.patches)
    assert len({patch.get_hatch() for patch in ax.patches}) == 3  # the parts differ by hatching too


def _turned_labels_clear_each_other(figure, ax) -> bool:
    """Unrotated labels keep a gap of at least 0.4 of a letter; turned ones sit that far apart beyond their height."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    labels = [label for label in ax.get_xticklabels() if label.get_text()]
    angle = labels[0].get_rotation()
    gap = 0.4 * labels[0].get_fontsize() * figure.dpi / 72
    if angle == 0:
        boxes = [label.get_window_extent(renderer) for label in labels]
        return all(first.x1 + gap <= second.x0 for first, second in zip(boxes, boxes[1:], strict=False))
    centres = [ax.transData.transform((tick, 0))[0] for tick in ax.get_xticks()]
    spacing = min(second - first for first, second in zip(centres, centres[1:], strict=False))
    heights = []
    for label in labels:  # a label's height is measured unturned
        label.set_rotation(0)
        heights.append(label.get_window_extent(renderer).height)
        label.set_rotation(angle)
    return spacing * np.sin(np.radians(angle)) > max(heights) + gap


def test_lesson_5s_long_approach_names_do_not_overlap():
    names = ["features + linear head", "fine-tuned, BatchNorm frozen", "fine-tuned, BatchNorm train"]
    comparison = pd.DataFrame({"val_accuracy": [1.0, 0.93, 0.93], "test_accuracy": [0.82, 0.84, 0.57],
                               "seconds": [1.9, 11.0, 8.1]}, index=names)
    figure = plots.plot_comparison(comparison, metrics=["val_accuracy", "test_accuracy", "seconds"])
    for ax in figure.axes:
        assert _turned_labels_clear_each_other(figure, ax)
    assert "".join(label.get_text() for label in figure.axes[0].get_xticklabels()).replace("\n", " ") \
        == "".join(names)
    # lesson 5's practice folder: five classes, whose names once overlapped unturned
    lesson5 = {"Speed limit 30": 40, "keep right": 35, "pedestrians": 30, "roundabout": 25, "road work": 8}
    counts = plots.plot_class_counts(lesson5)
    assert _turned_labels_clear_each_other(counts, counts.axes[0])
    many = plots.plot_class_counts({f"a rather long class name {number}": 10 + number for number in range(8)})
    assert _turned_labels_clear_each_other(many, many.axes[0])


def test_the_history_of_several_runs_keeps_its_legend_off_the_curves():
    runs = {f"run {number}": history_table(best=2 + number % 3) for number in range(4)}
    figure = plots.plot_history(runs, title="Training histories")
    figure.canvas.draw()
    legend = figure.legends[0].get_window_extent()
    for ax in figure.axes:
        assert ax.get_legend() is None and not _overlaps(legend, ax.get_window_extent())
        assert ax.get_window_extent().height > 200  # pixels: each panel keeps room for its curves
    markers = {line.get_marker() for line in figure.axes[0].lines if line.get_marker() not in (None, "None", "")}
    assert len(markers) == 4  # each run its own marker, not only its own colour


def test_a_title_that_counts_the_images_is_not_given_the_count_twice():
    sizes = [(30, 20), (32, 24)] * 89
    figure = plots.plot_image_sizes(sizes, title="Image sizes (178 images)")
    assert figure._suptitle.get_text() == "Image sizes (178 images)"
    assert plots.plot_image_sizes(sizes)._suptitle.get_text() == "Image sizes (178 images)"
