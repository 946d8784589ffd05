"""Plots for the lessons: data exploration, training curves, evaluation and the unknown class.

Every function draws one figure with matplotlib (and seaborn's style helpers) and **returns the
``matplotlib.figure.Figure``**; nothing calls ``plt.show()``. In a notebook the figure appears at the
end of the cell; assign the result (``figure = plot_history(history)``) or end the line with ``;`` so
that it is not shown twice, and call ``plt.close(figure)`` when you draw many figures in a loop.

Images can be given as file paths, PIL images, ``H x W x C`` arrays, or a normalised tensor batch
(``N x C x H x W``, as a data loader yields it): pass the backbone's ``mean`` and ``std`` and the
normalisation is undone before drawing.

Colours are chosen for every reader, including the one in twelve men who cannot tell red from green: classes and
runs take the Okabe-Ito palette (:data:`PALETTE`, with a marker each as a second cue), right and wrong answers are
blue and vermilion and carry a ✓ or ✗ in their titles, and heat maps use the perceptual colour map ``magma``
(:data:`HEAT_MAP`), whose brightness rises steadily, unlike ``jet``'s rainbow. No text is smaller than
:data:`MIN_FONT_SIZE` points.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter
from PIL import Image

from course_utils.image_files import load_rgb, to_numpy

__all__ = ["CORRECT_COLOR", "CORRECT_MARK", "HEAT_MAP", "MANY_CLASSES", "MARKERS", "MIN_FONT_SIZE", "MISTAKE_COLOR",
           "MISTAKE_MARK", "PALETTE", "plot_activation_maps", "plot_augmentations",
           "plot_class_confidence", "plot_class_counts", "plot_classification_report", "plot_comparison",
           "plot_confusion_matrix", "plot_feature_projection", "plot_history", "plot_image_grid", "plot_image_sizes",
           "plot_learning_rate_finder", "plot_misclassified", "plot_near_duplicates", "plot_predictions",
           "plot_reliability_diagram", "plot_roc_curve", "plot_score_histograms"]

#: The Okabe-Ito palette (Okabe and Ito, 2008): eight colours that stay distinct with every common colour-vision
#: deficiency. Blue, orange, bluish green, vermilion, sky blue, reddish purple, yellow, black.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#000000")
#: One marker per class or run, so that colour is never the only cue.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
CORRECT_COLOR = PALETTE[0]  # blue: right answers
MISTAKE_COLOR = PALETTE[3]  # vermilion: wrong answers (told apart from blue by everyone, and marked MISTAKE_MARK)
CORRECT_MARK = "✓"
MISTAKE_MARK = "✗"
#: The colour map of heat maps (class activation maps): perceptual, dark to bright, readable in grey too.
HEAT_MAP = "magma"
MIN_FONT_SIZE = 9  # points: the smallest text any figure draws
MANY_CLASSES = 12  # above this many classes, plots switch to a compact layout


# ----------------------------------------------------------------------------------------- helpers
def _color(number: int) -> str:
    """The ``number``-th colour of :data:`PALETTE` (it repeats after eight)."""
    return PALETTE[number % len(PALETTE)]


def _marker(number: int) -> str:
    """The ``number``-th marker of :data:`MARKERS` (it repeats after eight)."""
    return MARKERS[number % len(MARKERS)]


def _text_color_on(color: Any) -> str:
    """Black or white, whichever reads better on a background of ``color``."""
    red, green, blue = mcolors.to_rgb(color)
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.55 else "white"


def _marked(title: str, correct: bool) -> str:
    """``title`` with :data:`CORRECT_MARK` or :data:`MISTAKE_MARK` in front."""
    return f"{CORRECT_MARK if correct else MISTAKE_MARK} {title}"


def _wrapped(name: str, width: int = 16) -> str:
    """A category name broken into lines of at most ``width`` characters (at spaces), for a tick label."""
    return "\n".join(textwrap.wrap(name, width)) if len(name) > width and "\n" not in name else name


def _label_gap(label: Any, dpi: float) -> float:
    """The space, in pixels, that neighbouring tick labels need between them to read as two: half a letter."""
    return 0.5 * label.get_fontsize() * dpi / 72


def _labels_overlap(labels: Sequence[Any], renderer: Any, dpi: float) -> bool:
    """Whether neighbouring (unrotated) tick labels touch or nearly touch."""
    boxes = [label.get_window_extent(renderer) for label in labels]
    gap = _label_gap(labels[0], dpi)
    return any(first.x1 + gap > second.x0 for first, second in zip(boxes, boxes[1:], strict=False))


def _fit_category_labels(figure: Figure, ax: Any) -> None:
    """Make the x tick labels of a bar chart readable: long names wrapped; if neighbours still touch, the labels
    are turned by the smallest angle (30, 45 or 90 degrees) at which parallel labels no longer overlap."""
    ticks = ax.get_xticks()
    ax.set_xticks(ticks, [_wrapped(label.get_text()) for label in ax.get_xticklabels()])
    figure.tight_layout()
    renderer = figure.canvas.get_renderer()
    labels = [label for label in ax.get_xticklabels() if label.get_text()]
    if len(labels) < 2 or not _labels_overlap(labels, renderer, figure.dpi):
        return
    spacing = abs(ax.transData.transform((ticks[1], 0))[0] - ax.transData.transform((ticks[0], 0))[0])
    height = max(label.get_window_extent(renderer).height for label in labels) + _label_gap(labels[0], figure.dpi)
    # turned labels are parallel strips ``spacing * sin(angle)`` apart: they clear each other above their height
    angle = next((angle for angle in (30, 45) if spacing * math.sin(math.radians(angle)) > height), 90)
    for label in ax.get_xticklabels():
        label.set_rotation(angle)
        label.set_horizontalalignment("right" if angle < 90 else "center")
        label.set_rotation_mode("anchor" if angle < 90 else "default")
    figure.tight_layout()


def _display_array(image: Any, mean: Sequence[float] | None = None,
                   std: Sequence[float] | None = None) -> np.ndarray:
    """An ``H x W x C`` (or ``H x W``) array ready for ``imshow``, normalisation undone, floats in [0, 1]."""
    if hasattr(image, "path") and not isinstance(image, (str, os.PathLike)):  # a Sample
        image = image.path
    if isinstance(image, (str, os.PathLike)):
        image = load_rgb(image)
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = to_numpy(image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)  # channels first (a tensor) -> channels last
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.uint8)
    array = array.astype(np.float32)
    if mean is not None and std is not None:
        array = array * np.asarray(std, dtype=np.float32) + np.asarray(mean, dtype=np.float32)
    return np.clip(array, 0.0, 1.0)


def _image_list(images: Any) -> list[Any]:
    """Split a batch (array or tensor with 4 dimensions) or a sequence into single images."""
    if isinstance(images, (str, os.PathLike, Image.Image)):
        return [images]
    if hasattr(images, "ndim") and images.ndim == 4:
        return [images[index] for index in range(images.shape[0])]
    return list(images)


def _draw_grid(images: Any, titles: Sequence[str] | None, colors: Sequence[str] | None, *, columns: int,
               mean: Sequence[float] | None, std: Sequence[float] | None,
               figsize: tuple[float, float] | None) -> Figure:
    pictures = _image_list(images)
    if not pictures:
        raise ValueError("There are no images to show; pass at least one image.")
    if titles is not None and len(titles) != len(pictures):
        raise ValueError(f"Got {len(pictures)} images but {len(titles)} titles; pass one title per image.")
    columns = max(1, min(columns, len(pictures)))
    rows = math.ceil(len(pictures) / columns)
    title_lines = max((str(title).count("\n") + 1 for title in titles), default=0) if titles else 0
    # each title line gets its own height, so titles never touch the images of the row above
    figure, axes = plt.subplots(rows, columns, squeeze=False,
                                figsize=figsize or (1.9 * columns, (1.8 + 0.22 * title_lines) * rows + 0.3))
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= len(pictures):
            continue
        array = _display_array(pictures[index], mean, std)
        ax.imshow(array, cmap="gray" if array.ndim == 2 else None)
        if titles is not None:
            ax.set_title(titles[index], fontsize=9, **({"color": colors[index]} if colors else {}))
    figure.tight_layout()
    return figure


def _class_name(label: Any, classes: Sequence[str] | None) -> str:
    if classes is not None and isinstance(label, (int, np.integer)):
        return str(classes[int(label)])
    return str(label)


# ------------------------------------------------------------------------------------ exploration
def plot_image_grid(images: Any, titles: Sequence[str] | None = None, *, columns: int = 8,
                    mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                    figsize: tuple[float, float] | None = None) -> Figure:
    """Show images in a grid, optionally with one title each, and return the figure.

    ``images`` may be file paths, PIL images, ``H x W x C`` arrays, or a normalised ``N x C x H x W``
    tensor batch; for a normalised batch pass the ``mean`` and ``std`` used by the transform.
    """
    return _draw_grid(images, titles, None, columns=columns, mean=mean, std=std, figsize=figsize)


def _counts_series(counts: Any, classes: Sequence[str] | None) -> pd.Series | pd.DataFrame:
    if isinstance(counts, pd.DataFrame):
        return counts
    if isinstance(counts, Mapping | pd.Series):
        series = pd.Series(counts, dtype="int64")
    else:  # a list of labels, one per image
        tally = Counter(_class_name(label, classes) for label in to_numpy(counts).tolist())
        series = pd.Series(tally, dtype="int64")
    if classes is not None:
        series = series.reindex([str(name) for name in classes], fill_value=0)
    return series


def plot_class_counts(counts: Any, classes: Sequence[str] | None = None, *,
                      title: str = "Images per class") -> Figure:
    """Bar chart of images per class, largest first, with the count written on each bar.

    ``counts`` is a mapping or Series (class -> count), a list of labels (ints with ``classes``, or
    names), or a DataFrame such as ``Split.summary()`` (one stacked bar part per column). With many
    classes (more than 12, e.g. GTSRB's 43) the bars are horizontal so that every name stays readable.
    """
    table = _counts_series(counts, classes)
    totals = table.sum(axis=1) if isinstance(table, pd.DataFrame) else table
    order = totals.sort_values(ascending=False).index
    table = table.loc[order]
    horizontal = len(table) > MANY_CLASSES
    parts = table if isinstance(table, pd.DataFrame) else table.to_frame("images")
    legend_width = 1.6 if parts.shape[1] > 1 else 0.0  # the legend sits right of the bars, never on them
    size = ((7 + legend_width, 0.3 * len(table) + 1.5) if horizontal
            else (max(5, 0.8 * len(table) + 2) + legend_width, 4.5))
    figure, ax = plt.subplots(figsize=size)
    names = [str(name) for name in parts.index]
    start = np.zeros(len(parts))
    for number, column in enumerate(parts.columns):
        values = parts[column].to_numpy()
        style = {"label": str(column), "color": _color(number), "hatch": ("", "//", "..", "xx")[number % 4],
                 "edgecolor": "white"}  # hatching tells the parts apart without colour
        if horizontal:
            container = ax.barh(names, values, left=start, **style)
        else:
            container = ax.bar(names, values, bottom=start, **style)
        start = start + values
    ax.bar_label(container, labels=[f"{total:d}" for total in totals.loc[order]], padding=2, fontsize=MIN_FONT_SIZE)
    if horizontal:
        ax.invert_yaxis()  # largest on top
        ax.set_xlabel("images")
        ax.tick_params(axis="y", labelsize=MIN_FONT_SIZE)
        ax.margins(x=0.1)
    else:
        ax.set_ylabel("images")
        ax.margins(y=0.1)
    if parts.shape[1] > 1:
        ax.legend(title="part", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title)
    figure.tight_layout()
    if not horizontal:
        _fit_category_labels(figure, ax)
    return figure


def plot_image_sizes(sizes: Any, *, title: str = "Image sizes") -> Figure:
    """Scatter of image width against height with a histogram of each, and dashed median lines.

    ``sizes`` is a sequence of ``(width, height)`` pairs, a DataFrame with ``width`` and ``height``
    columns, or a list of image paths (only the file headers are read). The title gets the number of images,
    unless it already names it.
    """
    if isinstance(sizes, pd.DataFrame):
        table = sizes[["width", "height"]]
    else:
        pairs = []
        for item in sizes:
            if hasattr(item, "path") and not isinstance(item, (str, os.PathLike)):
                item = item.path
            if isinstance(item, (str, os.PathLike)):
                with Image.open(item) as image:
                    item = image.size
            pairs.append(tuple(item))
        table = pd.DataFrame(pairs, columns=["width", "height"])
    if table.empty:
        raise ValueError("There are no image sizes to plot.")
    grid = sns.JointGrid(data=table, x="width", y="height", height=5)
    grid.plot_joint(sns.scatterplot, s=12, alpha=0.5)
    grid.plot_marginals(sns.histplot, bins=30)
    median_width, median_height = table["width"].median(), table["height"].median()
    for line in (grid.ax_joint.axvline, grid.ax_marg_x.axvline):
        line(median_width, color="black", linestyle="--", linewidth=1)
    for line in (grid.ax_joint.axhline, grid.ax_marg_y.axhline):
        line(median_height, color="black", linestyle="--", linewidth=1)
    grid.ax_joint.set_xlabel(f"width in pixels (median {median_width:g})")
    grid.ax_joint.set_ylabel(f"height in pixels (median {median_height:g})")
    count = f"{len(table)} images"
    grid.figure.suptitle(title if count in title else f"{title} ({count})")  # a title may already give the count
    grid.figure.tight_layout()
    return grid.figure


def plot_augmentations(image: Any, transform: Callable[[Image.Image], Any], *, count: int = 8,
                       mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                       columns: int = 5) -> Figure:
    """Show one image next to ``count`` randomly augmented versions of it (``transform`` applied anew).

    Pass the ``mean`` and ``std`` of the transform's ``Normalize`` so the colours look right.
    """
    original = image if isinstance(image, Image.Image) else load_rgb(image)
    pictures = [np.asarray(original.convert("RGB"))]
    pictures += [_display_array(transform(original), mean, std) for _ in range(count)]
    titles = ["original"] + [f"augmented {number}" for number in range(1, count + 1)]
    return _draw_grid(pictures, titles, None, columns=columns, mean=None, std=None, figsize=None)


# ---------------------------------------------------------------------------------------- training
def plot_history(history: pd.DataFrame | Mapping[str, pd.DataFrame], *,
                 title: str | None = None) -> Figure:
    """Loss and accuracy per epoch, train (dashed) against validation (solid), best epoch marked.

    ``history`` is the table ``fit`` returns (columns ``epoch``, ``train_loss``, ``val_loss``,
    ``train_accuracy``, ``val_accuracy``), or a dict of them (e.g. ``{"feature extraction": h1,
    "fine-tuning": h2}``) to compare runs. The star marks the epoch with the best validation accuracy,
    the weights ``fit`` keeps. A history of ``training.fine_tune`` (column ``stage``) gets a dashed line where
    stage 2 (the body unfrozen) begins. Several runs differ in colour and marker and share one legend, below the
    panels.
    """
    runs = dict(history) if isinstance(history, Mapping) else {"": history}
    several = len(runs) > 1
    # several runs share one legend below the panels, so that the curves keep the whole of each panel
    legend_rows = math.ceil(4 * len(runs) / 3) if several else 0
    figure, (loss_ax, accuracy_ax) = plt.subplots(1, 2, figsize=(12 if several else 11, 4.2 + 0.28 * legend_rows))
    for number, (name, table) in enumerate(runs.items()):
        color = _color(number)
        epochs = table["epoch"] if "epoch" in table else pd.Series(range(1, len(table) + 1))
        prefix = f"{name} " if name else ""
        for ax, metric in ((loss_ax, "loss"), (accuracy_ax, "accuracy")):
            for part, style in (("train", "--"), ("val", "-")):
                column = f"{part}_{metric}"
                if column in table:
                    label = f"{prefix}{'train' if part == 'train' else 'validation'}"
                    ax.plot(epochs, table[column], style, marker=_marker(number), markersize=4,
                            color=color if name else (_color(0) if part == "train" else _color(1)), label=label)
        if "stage" in table and (table["stage"] == 2).any() and (table["stage"] == 1).any():
            start = float(epochs[(table["stage"] == 2).to_numpy()].iloc[0]) - 0.5
            for ax in (loss_ax, accuracy_ax):
                ax.axvline(start, color="gray", linestyle="--", linewidth=1,
                           label=f"{prefix}stage 2: body unfrozen" if ax is accuracy_ax else None)
        if "val_accuracy" in table and len(table):
            best = int(np.nanargmax(table["val_accuracy"].to_numpy()))
            kept = table.attrs.get("best_epoch")  # fit's choice: ties broken by the lower validation loss
            if kept is not None and (epochs == kept).any():
                best = int(np.flatnonzero((epochs == kept).to_numpy())[0])
            best_epoch, best_accuracy = epochs.iloc[best], table["val_accuracy"].iloc[best]
            for ax in (loss_ax, accuracy_ax):
                ax.axvline(best_epoch, color=color if name else "gray", linestyle=":", linewidth=1)
            accuracy_ax.plot([best_epoch], [best_accuracy], "*", markersize=14, markeredgecolor="black",
                             color=color if name else _color(1),
                             label=f"{prefix}best epoch {best_epoch} ({best_accuracy:.1%})")
    for ax, metric in ((loss_ax, "loss"), (accuracy_ax, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric.capitalize())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if not several:
            ax.legend(fontsize=MIN_FONT_SIZE)
    accuracy_ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    if title:
        figure.suptitle(title)
    if several:
        handles, labels = accuracy_ax.get_legend_handles_labels()
        figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=MIN_FONT_SIZE, frameon=False)
        legend_share = (0.28 * legend_rows + 0.15) / figure.get_size_inches()[1]
        figure.tight_layout(rect=(0, legend_share, 1, 1))
    else:
        figure.tight_layout()
    return figure


# -------------------------------------------------------------------------------------- evaluation
def plot_confusion_matrix(targets: Any, predicted: Any, classes: Sequence[str], *,
                          normalize: str | None = "row", title: str | None = None) -> Figure:
    """Confusion matrix: rows are true classes, columns predicted ones, each cell a count.

    With ``normalize="row"`` (default) colours show the share of each true class and cells read
    ``"12\\n80%"`` (count and row percentage; the diagonal percentages are the recalls). With
    ``normalize=None`` colours and texts are counts. With many classes (e.g. 43) the figure grows,
    fonts shrink, and only non-zero cells are annotated, with counts only.
    """
    from sklearn.metrics import confusion_matrix

    if normalize not in ("row", None):
        raise ValueError(f"normalize must be 'row' or None, not {normalize!r}.")
    count = len(classes)
    matrix = confusion_matrix(to_numpy(targets), to_numpy(predicted), labels=list(range(count)))
    row_totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, row_totals, out=np.zeros(matrix.shape), where=row_totals > 0)
    many = count > MANY_CLASSES
    texts = np.empty(matrix.shape, dtype=object)
    for (row, column), value in np.ndenumerate(matrix):
        if many:
            texts[row, column] = str(value) if value else ""
        elif normalize == "row":
            texts[row, column] = f"{value}\n{shares[row, column]:.0%}"
        else:
            texts[row, column] = str(value)
    side = max(5.0, 0.34 * count + 2.5)  # room for MIN_FONT_SIZE text in every cell
    figure, ax = plt.subplots(figsize=(side + 1, side))
    sns.heatmap(shares if normalize == "row" else matrix, annot=texts, fmt="", cmap="Blues", ax=ax,
                vmin=0, vmax=1 if normalize == "row" else None, square=True,
                xticklabels=list(classes), yticklabels=list(classes),
                annot_kws={"fontsize": MIN_FONT_SIZE if many else 10}, linewidths=0.5, linecolor="white",
                cbar_kws={"label": "share of the true class" if normalize == "row" else "images",
                          "shrink": 0.8})
    ax.tick_params(axis="x", rotation=90 if many else 30, labelsize=MIN_FONT_SIZE if many else 10)
    ax.tick_params(axis="y", rotation=0, labelsize=MIN_FONT_SIZE if many else 10)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(title or f"Confusion matrix (accuracy {accuracy:.1%}, {matrix.sum()} images)")
    figure.tight_layout()
    return figure


def _classification_report_frame(targets: Any, predicted: Any, classes: Sequence[str]) -> pd.DataFrame:
    """:func:`course_utils.evaluation.classification_table` with the accuracy as a row before the averages."""
    from course_utils.evaluation import classification_table

    table = classification_table(to_numpy(targets), to_numpy(predicted), [str(name) for name in classes])
    per_class = table.iloc[: len(classes)]
    accuracy = pd.DataFrame({"precision": [np.nan], "recall": [np.nan], "f1": [table.attrs["accuracy"]],
                             "support": [int(per_class["support"].sum())]}, index=["accuracy"])
    return pd.concat([per_class, accuracy, table.iloc[len(classes):]])


def plot_classification_report(targets: Any, predicted: Any, classes: Sequence[str], *,
                               title: str = "Classification report") -> Figure:
    """The classification report as a table figure, cells shaded from light (poor) to dark blue (good).

    Columns: precision, recall, F1 and support (images of that class); rows: each class, then the
    accuracy, the macro average (every class counts the same) and the weighted average (by support).
    """
    table = _classification_report_frame(targets, predicted, classes)
    figure, ax = plt.subplots(figsize=(6.5, 0.3 * len(table) + 1.2))
    ax.axis("off")
    cell_text = [[("" if np.isnan(value) else f"{value:.2f}") for value in row[:3]] + [f"{int(row[3])}"]
                 for row in table.to_numpy()]
    colormap = plt.get_cmap("Blues")  # one hue, light to dark: no red/green pair to tell apart
    colours = [[(colormap(0.1 + 0.7 * value) if not np.isnan(value) else "white") for value in row[:3]]
               + ["white"] for row in table.to_numpy()]
    drawn = ax.table(cellText=cell_text, rowLabels=list(table.index), colLabels=list(table.columns),
                     cellColours=colours, loc="center", cellLoc="center")
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(MIN_FONT_SIZE)
    for (row, column), cell in drawn.get_celld().items():
        if row > 0 and 0 <= column < 3:
            cell.get_text().set_color(_text_color_on(cell.get_facecolor()))
        if row > len(classes):  # accuracy and the averages
            cell.get_text().set_fontweight("bold")
    ax.set_title(title)
    figure.tight_layout()
    return figure


def _confidences(probabilities: Any, predicted: np.ndarray) -> np.ndarray | None:
    if probabilities is None:
        return None
    values = to_numpy(probabilities).astype(float)
    return values[np.arange(len(predicted)), predicted] if values.ndim == 2 else values


def plot_predictions(images: Any, targets: Any, predicted: Any, classes: Sequence[str], *,
                     probabilities: Any = None, mean: Sequence[float] | None = None,
                     std: Sequence[float] | None = None, columns: int = 6) -> Figure:
    """Images titled ``"✓ true / predicted (confidence)"``: blue with ✓ when right, vermilion with ✗ when wrong.

    ``probabilities`` is optional: an ``N x classes`` array (the predicted class's probability is shown)
    or one confidence per image.
    """
    targets, predicted = to_numpy(targets).astype(int), to_numpy(predicted).astype(int)
    confidences = _confidences(probabilities, predicted)
    titles, colors = [], []
    for index, (truth, guess) in enumerate(zip(targets, predicted, strict=True)):
        text = f"{classes[truth]} / {classes[guess]}"
        if confidences is not None:
            text += f" ({confidences[index]:.0%})"
        if len(text) > 22:
            text = text.replace(" / ", " /\n", 1)
        titles.append(_marked(text, truth == guess))
        colors.append(CORRECT_COLOR if truth == guess else MISTAKE_COLOR)
    figure = _draw_grid(images, titles, colors, columns=columns, mean=mean, std=std, figsize=None)
    figure.suptitle("true / predicted" + (" (confidence)" if confidences is not None else "")
                    + f"; {np.sum(targets != predicted)} of {len(targets)} wrong, marked {MISTAKE_MARK}", fontsize=10)
    figure.tight_layout()
    return figure


def plot_misclassified(images: Any, targets: Any, predicted: Any, classes: Sequence[str], *,
                       probabilities: Any = None, mean: Sequence[float] | None = None,
                       std: Sequence[float] | None = None, columns: int = 6,
                       max_images: int = 12) -> Figure:
    """Only the mistakes (most confident first when ``probabilities`` are given), at most ``max_images``.

    When there is no mistake the figure says so in words instead of staying empty.
    """
    targets, predicted = to_numpy(targets).astype(int), to_numpy(predicted).astype(int)
    wrong = np.flatnonzero(targets != predicted)
    if len(wrong) == 0:
        figure, ax = plt.subplots(figsize=(5, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"No mistakes: all {len(targets)} images were classified correctly.",
                ha="center", va="center", color=CORRECT_COLOR)
        return figure
    confidences = _confidences(probabilities, predicted)
    if confidences is not None:
        wrong = wrong[np.argsort(-confidences[wrong], kind="stable")]
    wrong = wrong[:max_images]
    pictures = _image_list(images)
    figure = plot_predictions([pictures[index] for index in wrong], targets[wrong], predicted[wrong],
                              classes, probabilities=None if confidences is None else confidences[wrong],
                              mean=mean, std=std, columns=columns)
    return figure


def plot_class_confidence(probabilities: Mapping[str, float] | pd.Series, *, image: Any = None,
                          title: str | None = None, mean: Sequence[float] | None = None,
                          std: Sequence[float] | None = None) -> Figure:
    """Horizontal bars of the model's probability for each class for one image; the top class highlighted.

    ``probabilities`` maps class names to probabilities (``predict_image`` returns such a Series). Give
    ``image`` to show the picture beside the bars.
    """
    series = pd.Series(probabilities, dtype=float).sort_values(ascending=False)
    if series.empty:
        raise ValueError("There are no class probabilities to plot.")
    height = max(2.5, 0.3 * len(series) + 1)
    if image is None:
        figure, bar_ax = plt.subplots(figsize=(6, height))
    else:
        figure, (image_ax, bar_ax) = plt.subplots(1, 2, figsize=(10, height),
                                                  gridspec_kw={"width_ratios": [1, 1.6]})
        array = _display_array(image, mean, std)
        image_ax.imshow(array, cmap="gray" if array.ndim == 2 else None)
        image_ax.axis("off")
    colors = [_color(1)] + ["tab:gray"] * (len(series) - 1)
    bars = bar_ax.barh([str(name) for name in series.index], series.to_numpy(), color=colors)
    bar_ax.bar_label(bars, labels=[f"{value:.1%}" for value in series], padding=3, fontsize=MIN_FONT_SIZE)
    bar_ax.invert_yaxis()
    bar_ax.set_xlim(0, 1.15)
    bar_ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    bar_ax.set_xlabel("probability")
    bar_ax.set_title(title or f"Prediction: {series.index[0]} ({series.iloc[0]:.1%})")
    figure.tight_layout()
    return figure


# ------------------------------------------------------------------------------ the unknown class
def plot_score_histograms(known_scores: Any, unknown_scores: Any, *, threshold: float | None = None,
                          bins: int = 30, score_name: str = "maximum softmax probability") -> Figure:
    """Overlaid histograms of a confidence score for known and unknown images, with the threshold.

    Higher scores mean "looks known". Each histogram shows shares of its own group, so groups of
    different sizes compare fairly. Images scoring below ``threshold`` would be rejected as unknown.
    """
    known, unknown = to_numpy(known_scores).astype(float), to_numpy(unknown_scores).astype(float)
    figure, ax = plt.subplots(figsize=(7, 4))
    edges = np.histogram_bin_edges(np.concatenate([known, unknown]), bins=bins)
    for scores, name, color, hatch in ((known, "known", _color(0), ""), (unknown, "unknown", _color(3), "//")):
        ax.hist(scores, bins=edges, weights=np.full(len(scores), 1 / max(len(scores), 1)), alpha=0.5, color=color,
                hatch=hatch, edgecolor=color, label=f"{name} ({len(scores)} images)")
    if threshold is not None:
        kept, rejected = np.mean(known >= threshold), np.mean(unknown < threshold)
        ax.axvline(threshold, color="black", linestyle="--",
                   label=f"threshold {threshold:.2f}: keeps {kept:.0%} of known, rejects {rejected:.0%} "
                         "of unknown")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(score_name)
    ax.set_ylabel("share of the group's images")
    ax.set_title(f"{score_name[:1].upper()}{score_name[1:]}: known vs unknown")  # keeps "P(unknown)"
    # below the axes, so the legend never hides a bar
    ax.legend(fontsize=MIN_FONT_SIZE, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
    figure.tight_layout()
    return figure


def plot_roc_curve(known_scores: Any, unknown_scores: Any = None, *, title: str | None = None,
                   operating_points: Mapping[str, tuple[float, float]] | None = None) -> Figure:
    """ROC curve of telling known from unknown images by a score, with the AUROC in the legend.

    Pass ``known_scores, unknown_scores`` for one method, or a dict ``{method: (known, unknown)}`` as the
    first argument to compare several. AUROC 1.0 separates perfectly; 0.5 (the diagonal) is chance.
    scikit-learn's :class:`~sklearn.metrics.RocCurveDisplay` draws the curves ("known" is the positive class).
    ``operating_points`` marks decisions actually taken: ``{name: (unknown accepted, known accepted)}``, both
    shares between 0 and 1 (for example a model's answers at its top class), each a labelled point.
    """
    from sklearn.metrics import RocCurveDisplay

    if isinstance(known_scores, Mapping):
        methods = dict(known_scores)
    else:
        methods = {"": (known_scores, unknown_scores)}
    figure, ax = plt.subplots(figsize=(5.5, 5))
    for number, (name, (known, unknown)) in enumerate(methods.items()):
        known, unknown = to_numpy(known).astype(float), to_numpy(unknown).astype(float)
        is_known = np.concatenate([np.ones(len(known)), np.zeros(len(unknown))])
        last = number == len(methods) - 1
        display = RocCurveDisplay.from_predictions(is_known, np.concatenate([known, unknown]), pos_label=1,
                                                   name=name or None, ax=ax, plot_chance_level=last)
        area = f"AUROC = {display.roc_auc:.2f}"
        display.line_.set_label(f"{name} ({area})" if name else area)
        display.line_.set_linewidth(2)
        display.line_.set_color(_color(number))
        display.line_.set_linestyle(("-", "--", "-.", ":")[number % 4])  # a second cue besides the colour
        if last:
            display.chance_level_.set_label("chance (AUROC = 0.50)")
    for number, (name, (unknown_accepted, known_accepted)) in enumerate((operating_points or {}).items()):
        ax.plot([unknown_accepted], [known_accepted], marker="os^Dv"[number % 5], markersize=9, linestyle="none",
                markerfacecolor="none", markeredgewidth=2, color=_color(number),
                label=f"{name}: {known_accepted:.1%} known kept, {unknown_accepted:.1%} unknown accepted")
    ax.set_xlabel("unknown images accepted (false positive rate)")
    ax.set_ylabel("known images accepted (true positive rate)")
    ax.set_title(title or "ROC: known vs unknown")
    ax.legend(loc="lower right", fontsize=MIN_FONT_SIZE)
    figure.tight_layout()
    return figure


# ------------------------------------------------------------------------------------- comparison
def _metric_label(metric: str, value: float) -> str:
    if "accuracy" in metric:
        return f"{value:.1%}"
    if "param" in metric:
        return f"{value / 1e6:.2f}M" if value >= 1e5 else f"{value:,.0f}"
    if "second" in metric:
        return f"{value:.1f} s"
    return f"{value:.3g}"


def plot_comparison(results: pd.DataFrame | Mapping[str, Mapping[str, float]], *,
                    metrics: Sequence[str] | None = None, title: str = "Comparison",
                    intervals: Mapping[str, Sequence[tuple[float, float] | None]] | None = None) -> Figure:
    """One bar chart per metric comparing approaches (e.g. accuracy, seconds, trainable parameters).

    ``results`` is a DataFrame with one row per approach (index, or an ``approach`` column) or a dict
    ``{approach: {metric: value}}``. Parameter counts spanning more than 100x use a log scale.
    ``intervals`` optionally gives error bars: ``{metric: [(low, high) or None, one per approach]}``, e.g. the
    95% intervals of test accuracies from :func:`course_utils.findings.accuracy_interval`.
    """
    table = pd.DataFrame.from_dict(results, orient="index") if isinstance(results, Mapping) else results
    if "approach" in table.columns:
        table = table.set_index("approach")
    metrics = list(metrics or table.select_dtypes("number").columns)
    if not metrics:
        raise ValueError("There is no numeric column to compare.")
    intervals = dict(intervals or {})
    for metric, bounds in intervals.items():
        if metric not in metrics:
            raise ValueError(f"intervals names {metric!r}, which is not among the metrics shown: {metrics}.")
        if len(bounds) != len(table):
            raise ValueError(f"intervals[{metric!r}] has {len(bounds)} entries for {len(table)} approaches.")
    width = max(3.8, 1.1 * len(table) + 1.0)  # per panel: room for each approach's name
    figure, axes = plt.subplots(1, len(metrics), figsize=(width * len(metrics), 4.2), squeeze=False)
    colors = [_color(number) for number in range(len(table))]
    for ax, metric in zip(axes.flat, metrics, strict=True):
        values = table[metric].astype(float)
        bars = ax.bar([str(name).replace("\n", " ") for name in table.index], values, color=colors)
        if metric in intervals:
            bounds = [bound if bound is not None else (value, value)
                      for bound, value in zip(intervals[metric], values, strict=True)]
            below = [max(value - low, 0.0) for (low, _), value in zip(bounds, values, strict=True)]
            above = [max(high - value, 0.0) for (_, high), value in zip(bounds, values, strict=True)]
            ax.errorbar(range(len(values)), values, yerr=[below, above], fmt="none", ecolor="black", capsize=4,
                        linewidth=1)
            labels = ax.bar_label(bars, labels=[_metric_label(metric, value) for value in values],
                                  fontsize=MIN_FONT_SIZE, label_type="center")
            for label, color in zip(labels, colors, strict=True):
                label.set_color(_text_color_on(color))
        else:
            ax.bar_label(bars, labels=[_metric_label(metric, value) for value in values], fontsize=MIN_FONT_SIZE)
        if "param" in metric and values.min() > 0 and values.max() / values.min() > 100:
            ax.set_yscale("log")
        elif "accuracy" in metric:
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        else:
            ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.margins(y=0.15)
        title_text = metric.replace("_", " ")
        ax.set_title(title_text + ("\n(bars: 95% interval)" if metric in intervals else ""))
    figure.suptitle(title)
    figure.tight_layout()
    for ax in axes.flat:
        _fit_category_labels(figure, ax)
    return figure


# ------------------------------------------------------------------------------- activation maps
def plot_activation_maps(images: Any, maps: Any, titles: Sequence[str] | None = None, *,
                         colors: Sequence[str] | None = None, correct: Sequence[bool] | None = None,
                         mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                         alpha: float = 0.45, columns: int = 6, title: str | None = None,
                         map_size: tuple[int, int] | None = None) -> Figure:
    """Each image above the same image with its class activation map overlaid (:data:`HEAT_MAP`, dark to bright).

    ``maps`` holds one ``H x W`` map per image, values in [0, 1] (as ``activation_maps.activation_maps``
    returns them); a map smaller than its image is stretched to it. ``titles`` and ``colors`` (one each per
    image) label the pairs. ``correct`` (one flag per image, e.g. ``predicted == targets``) marks each title ✓ or
    ✗ and colours it as :func:`plot_predictions` does (unless ``colors`` are given). Pass the ``mean``/``std`` of a
    normalised tensor batch so that the colours are shown as the camera saw them. ``map_size`` (cells, height
    x width, e.g. ``setting.map_size`` of ``activation_maps.readable_map``) is written under the title: how
    coarse the map really is before it was stretched.
    """
    pictures, heat = _image_list(images), _image_list(maps)
    if not pictures:
        raise ValueError("There are no images to show; pass at least one image.")
    if len(heat) != len(pictures):
        raise ValueError(f"Got {len(pictures)} images but {len(heat)} maps; pass one map per image.")
    if titles is not None and len(titles) != len(pictures):
        raise ValueError(f"Got {len(pictures)} images but {len(titles)} titles; pass one title per image.")
    if correct is not None:
        correct = [bool(flag) for flag in to_numpy(correct).tolist()]
        if len(correct) != len(pictures):
            raise ValueError(f"Got {len(pictures)} images but {len(correct)} correct flags; pass one per image.")
        titles = [_marked(str(text), flag) for text, flag in zip(titles or [""] * len(correct), correct, strict=True)]
        colors = colors or [CORRECT_COLOR if flag else MISTAKE_COLOR for flag in correct]
    columns = max(1, min(columns, len(pictures)))
    rows = math.ceil(len(pictures) / columns)
    figure, axes = plt.subplots(2 * rows, columns, squeeze=False, figsize=(2.0 * columns, 4.0 * rows + 0.4))
    for ax in axes.flat:
        ax.axis("off")
    for index, (picture, cam) in enumerate(zip(pictures, heat, strict=True)):
        row, column = 2 * (index // columns), index % columns
        array = _display_array(picture, mean, std)
        cam = np.asarray(to_numpy(cam), dtype=np.float32)
        if cam.shape != array.shape[:2]:
            cam = np.asarray(Image.fromarray(cam).resize((array.shape[1], array.shape[0]), Image.BILINEAR))
        axes[row, column].imshow(array, cmap="gray" if array.ndim == 2 else None)
        axes[row + 1, column].imshow(array, cmap="gray" if array.ndim == 2 else None)
        axes[row + 1, column].imshow(np.clip(cam, 0, 1), cmap=HEAT_MAP, alpha=alpha, vmin=0, vmax=1)
        if titles is not None:
            axes[row, column].set_title(titles[index], fontsize=9,
                                        **({"color": colors[index]} if colors else {}))
    resolution = f"maps of {map_size[0]} x {map_size[1]} cells, stretched to the image" if map_size else None
    if title or resolution:
        figure.suptitle("\n".join(text for text in (title, resolution) if text))
    figure.tight_layout()
    return figure


def plot_near_duplicates(duplicates: Any, *, count: int = 6, columns: int = 4) -> Figure:
    """The ``count`` closest test/training pairs of a near-duplicate check, side by side, with their similarity.

    ``duplicates`` is what ``near_duplicates.find_near_duplicates`` returns, computed with the samples (so that
    the pairs have file paths). With no pair above the threshold the figure says so.
    """
    pairs = duplicates.pairs.head(count)
    if len(pairs) == 0:
        figure, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"No test image has a near-duplicate in training (cosine similarity >= "
                          f"{duplicates.threshold:g})", ha="center", va="center")
        return figure
    if "test_path" not in pairs:
        raise ValueError("These near-duplicates have no file paths: pass train_samples and test_samples to "
                         "find_near_duplicates() to see the images.")
    images = [path for row in pairs.itertuples() for path in (row.test_path, row.train_path)]
    titles = [title for row in pairs.itertuples()
              for title in (f"test {row.test_index}\ncosine {row.similarity:.3f}", f"train {row.train_index}\n")]
    figure = _draw_grid(images, titles, None, columns=max(2, columns - columns % 2), mean=None, std=None,
                        figsize=None)
    figure.suptitle(f"The {len(pairs)} closest of {duplicates.count} near-duplicate pairs (test | training)")
    figure.tight_layout()
    return figure


# ----------------------------------------------------------------------------------------------- training
def plot_learning_rate_finder(result: Any, *, title: str | None = None) -> Figure:
    """The learning-rate finder's curve: smoothed loss against learning rate (log scale), suggestion marked.

    ``result`` is what ``training.find_learning_rate`` returns. Read it from the left: the loss stays flat
    while the rate is too small to matter, falls where the rate is useful, and shoots up where it is too high.
    The suggested rate (a tenth of the rate at the lowest loss) sits on the falling part.
    """
    figure, ax = plt.subplots(figsize=(7, 4))
    ax.plot(result.rates, result.losses, color=_color(0), label="smoothed training loss")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("loss")
    if result.losses and result.losses[0] - min(result.losses) > 1e-9:
        low, start = min(result.losses), result.losses[0]  # the steep end of a diverging sweep would squash
        ax.set_ylim(low - 0.05 * (start - low), start + 0.6 * (start - low))  # the useful part of the curve
    if result.suggestion is not None:
        rates = np.log10(np.asarray(result.rates))
        loss_there = float(np.interp(np.log10(result.suggestion), rates, result.losses))
        ax.plot([result.suggestion], [loss_there], "o", color=_color(3), markersize=9,
                label=f"suggested: {result.suggestion:.1e}")
        ax.axvline(result.suggestion, color=_color(3), linestyle=":", linewidth=1)
    ax.set_title(title or ("Learning-rate finder" if result.suggestion is not None
                           else "Learning-rate finder: no suggestion (the loss never fell)"))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=MIN_FONT_SIZE)
    figure.tight_layout()
    return figure


def plot_feature_projection(features: Mapping[str, Any], labels: Any, classes: Sequence[str], *,
                            title: str | None = None) -> Figure:
    """The same images' features from several models, each projected to 2-D with PCA, side by side.

    ``features`` maps a model's name to its ``(images, features)`` array; ``labels`` colour the points by class.
    Classes that form separate clouds in 2-D are easy for a linear head; a single tangle means the features do
    not yet tell the classes apart (PCA keeps the two directions of largest variance, so it shows the coarse
    structure; a linear head can still use the other directions).
    """
    from sklearn.decomposition import PCA

    labels = to_numpy(labels).astype(int)
    figure, axes = plt.subplots(1, len(features), figsize=(5 * len(features), 4.6), squeeze=False)
    for ax, (name, values) in zip(axes[0], features.items(), strict=True):
        points = PCA(n_components=2, random_state=0).fit_transform(to_numpy(values).astype(float))
        for label, class_name in enumerate(classes):
            chosen = labels == label
            ax.scatter(points[chosen, 0], points[chosen, 1], s=16, alpha=0.7, color=_color(label),
                       marker=_marker(label), label=str(class_name))
        ax.set_title(name)
        ax.set_xlabel("first principal component")
        ax.set_ylabel("second principal component")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=MIN_FONT_SIZE, frameon=False)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


# ------------------------------------------------------------------------------------------- calibration
def plot_reliability_diagram(confidences: Any, correct: Any = None, *, bins: int | None = None,
                             title: str | None = None) -> Figure:
    """Reliability diagram: accuracy against confidence per confidence bin, with the ECE in the legend.

    Pass ``confidences, correct`` (each image's top softmax probability, 1 where its prediction was right) for
    one model, or a dict ``{name: (confidences, correct)}`` as the first argument to compare several (before
    and after temperature scaling, say). A calibrated model's points lie on the diagonal; below it, the model
    is over-confident, above it under-confident. The lower panel counts the images in each bin (log scale): a
    bin with few images says little. Bins and ECE: :mod:`course_utils.calibration` (Guo et al., 2017).
    """
    from course_utils import calibration

    bins = bins or calibration.BINS
    runs = dict(confidences) if isinstance(confidences, Mapping) else {"": (confidences, correct)}
    figure, (ax, count_ax) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True,
                                          gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="perfectly calibrated")
    for number, (name, (values, right)) in enumerate(runs.items()):
        table = calibration.reliability_bins(values, right, bins=bins)
        error = calibration.expected_calibration_error(values, right, bins=bins)
        used = table[table["images"] > 0]
        label = f"ECE = {error:.1%}"
        ax.plot(used["confidence"], used["accuracy"], marker=_marker(number), color=_color(number),
                label=f"{name} ({label})" if name else label)
        count_ax.step([*table["low"], 1.0], [*table["images"], table["images"].iloc[-1]], where="post",
                      color=_color(number))
    ax.set_ylabel("accuracy in the bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title or "Reliability diagram")
    ax.legend(loc="upper left", fontsize=MIN_FONT_SIZE)
    ax.grid(alpha=0.3)
    count_ax.set_yscale("symlog", linthresh=1)  # logarithmic above 1 image, so that 0 still has a place
    count_ax.set_ylim(0, 2 * max(max(line.get_ydata()) for line in count_ax.lines))
    count_ax.set_ylabel("images")
    count_ax.set_xlabel("confidence (top softmax probability); each point: a bin's mean")
    count_ax.grid(alpha=0.3)
    figure.tight_layout()
    return figure
