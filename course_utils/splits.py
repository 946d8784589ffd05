"""Train/validation/test splits that are stratified, reproducible and *group-aware*.

GTSRB films each physical sign several times: a *track* of near-identical frames. A random split of frames
puts frames of one sign in train and in test, and the model "recognises" test images it has practically
seen: that is why tutorials report 100%. :func:`split_samples` keeps every group (track) in exactly one
part; ``group_aware=False`` gives the leaky frame-level split, for the lesson that demonstrates the leak.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from course_utils import messages
from course_utils.samples import DatasetError, Sample

__all__ = ["PARTS", "Split", "classes_below", "drop_rare_classes", "group_overlap", "inverse_frequency_weights",
           "keep_largest_classes", "select_classes", "split_samples", "test_images_with_train_sibling",
           "unknown_class_split", "with_unknown_class"]

PARTS: tuple[str, ...] = ("train", "val", "test")


@dataclass(repr=False)
class Split:
    """A data set cut into three parts, with the class names that the labels index."""

    classes: list[str]
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]

    def parts(self) -> dict[str, list[Sample]]:
        """``{"train": [...], "val": [...], "test": [...]}``."""
        return {"train": self.train, "val": self.val, "test": self.test}

    def summary(self) -> pd.DataFrame:
        """Images per class (rows) and part (columns)."""
        counts = {part: Counter(sample.label for sample in samples) for part, samples in self.parts().items()}
        table = pd.DataFrame({part: [counts[part][label] for label in range(len(self.classes))]
                              for part in PARTS}, index=pd.Index(self.classes, name="class"))
        return table

    def __repr__(self) -> str:  # the default would print every sample
        return (f"Split({len(self.classes)} classes; train {len(self.train)}, val {len(self.val)}, "
                f"test {len(self.test)} images)")


def _part_targets(sizes: list[int], fractions: dict[str, float]) -> list[str]:
    """Deal groups (given by their sizes, in random order) to parts so that image counts follow fractions.

    With three or more groups every part with a non-zero fraction gets at least one group. Each next group
    goes to the part furthest below its target number of images.
    """
    total = sum(sizes)
    wanted = [part for part in PARTS if fractions[part] > 0]
    chosen: list[str] = []
    counts = dict.fromkeys(PARTS, 0)
    for index, size in enumerate(sizes):
        if len(sizes) >= len(wanted) and index < len(wanted):
            part = wanted[index]  # first, one group for every part
        else:
            part = max(wanted, key=lambda p: (fractions[p] * total - counts[p], -PARTS.index(p)))
        chosen.append(part)
        counts[part] += size
    return chosen


def split_samples(samples: Sequence[Sample], classes: Sequence[str], *, val_fraction: float = 0.15,
                  test_fraction: float = 0.15, seed: int = 0, group_aware: bool = True) -> Split:
    """Split samples into train/val/test, stratified by class, reproducible for a ``seed``.

    ``group_aware=True`` keeps all images of a group (a track) in one part, so no physical sign is in both
    train and test. ``group_aware=False`` splits image by image (the leaky split, for demonstration).
    A group belongs to the class most of its images have. ``test_fraction=0`` leaves the test part empty
    (for data sets that bring their own test set). Raises :class:`DatasetError` when a part would be empty.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError("val_fraction and test_fraction must lie in [0, 1) and leave some for training.")
    if not samples:
        raise DatasetError("There are no images to split: check the folder and the classes you chose.")
    members: dict[str, list[int]] = defaultdict(list)
    for index, sample in enumerate(samples):
        members[sample.group if group_aware else str(index)].append(index)
    groups_of_class: dict[int, list[str]] = defaultdict(list)
    for group, indices in members.items():
        label = Counter(samples[i].label for i in indices).most_common(1)[0][0]
        groups_of_class[label].append(group)

    fractions = {"train": 1 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}
    part_of_sample: dict[int, str] = {}
    too_few = []
    for label in sorted(groups_of_class):
        groups = sorted(groups_of_class[label])
        # bytes, so that a class name holding undecodable bytes (legal on Linux) seeds like any other
        random.Random(f"{seed}/{classes[label]}".encode("utf-8", "surrogateescape")).shuffle(groups)
        if len(groups) < 3 and (val_fraction > 0 or test_fraction > 0):
            too_few.append(f"{classes[label]} ({len(groups)})")
        for group, part in zip(groups, _part_targets([len(members[g]) for g in groups], fractions),
                                      strict=True):
            part_of_sample.update(dict.fromkeys(members[group], part))
    if too_few:
        messages.say(f"ℹ️ Class(es) with fewer than 3 groups (tracks or images) cannot appear in every part: "
                     f"{', '.join(too_few)}; add images, or drop them with drop_rare_classes() (or, with course run, "
                     "delete their folders or split the folder yourself into train/ and val/ and pass it with "
                     "-p DATASET <folder>).")

    parts: dict[str, list[Sample]] = {part: [] for part in PARTS}
    for index, sample in enumerate(samples):
        parts[part_of_sample[index]].append(sample)
    for part in PARTS:
        if fractions[part] > 0 and not parts[part]:
            raise DatasetError(f"The {part} part would be empty: there are too few images (or tracks) per "
                               "class (3 or more are needed); add images, or split the folder yourself into "
                               "train/, val/ and test/ sub-folders of class folders (course run -p DATASET "
                               "<folder> then uses your parts; in code, lower val_fraction/test_fraction).")
    return Split(list(classes), parts["train"], parts["val"], parts["test"])


def group_overlap(split: Split) -> int:
    """How many groups (tracks) appear in more than one part; 0 for a group-aware split."""
    parts_of_group: dict[str, set[str]] = defaultdict(set)
    for part, samples in split.parts().items():
        for sample in samples:
            parts_of_group[sample.group].add(part)
    return sum(1 for parts in parts_of_group.values() if len(parts) > 1)


def test_images_with_train_sibling(split: Split) -> int:
    """How many test images share their group (a sign's track) with at least one training image.

    Such an image has a near-copy in training, so the test measures recall of that very sign rather than
    recognition of new ones. A group-aware split gives 0.
    """
    train_groups = {sample.group for sample in split.train}
    return sum(sample.group in train_groups for sample in split.test)


def unknown_class_split(split: Split, known: Sequence[str], held_out: Sequence[str] = (),
                        unknown_name: str = "unknown") -> Split:
    """Lesson 4's split: the ``known`` classes plus one ``unknown_name`` class pooling every other class.

    Relabels each part of ``split`` (built from every sign type) with :func:`with_unknown_class`, part by
    part, so no track moves between parts. The classes in ``held_out`` are dropped from train and val: the
    model never sees them, not even as "unknown", and they appear only in the test part, which stays whole.
    """
    parts: dict[str, list[Sample]] = {}
    classes: list[str] = []
    for name, samples in split.parts().items():
        if name != "test":
            samples = [sample for sample in samples if split.classes[sample.label] not in held_out]
        parts[name], classes = with_unknown_class(samples, split.classes, known, unknown_name)
    return Split(classes, parts["train"], parts["val"], parts["test"])


def inverse_frequency_weights(counts: Sequence[float]) -> torch.Tensor:
    """One loss weight per class, inversely proportional to its count: ``total / (classes * count)``.

    Every class then adds the same total weight to the loss, and a balanced data set gets weight 1 for every
    class. The common scale does not change ``nn.CrossEntropyLoss`` with its default mean reduction, which
    divides by the summed weights of the batch's labels; it matters with ``reduction="sum"``. Pass the training
    images per class.
    """
    counts = torch.as_tensor(counts, dtype=torch.float32)
    if (counts <= 0).any():
        raise ValueError(f"Every class needs at least one training image to be weighted; counts: "
                         f"{counts.int().tolist()}.")
    return counts.sum() / (len(counts) * counts)


def select_classes(samples: Sequence[Sample], classes: Sequence[str], keep: Sequence[str]
                   ) -> tuple[list[Sample], list[str]]:
    """Keep only the classes named in ``keep`` (in that order) and renumber the labels 0, 1, 2, ..."""
    keep = list(dict.fromkeys(keep))
    unknown = [name for name in keep if name not in classes]
    if unknown:
        raise ValueError(f"Unknown class(es) {', '.join(unknown)}: the classes are {', '.join(classes)}.")
    new_label = {classes.index(name): index for index, name in enumerate(keep)}
    kept = [Sample(s.path, new_label[s.label], s.group) for s in samples if s.label in new_label]
    return kept, keep


def keep_largest_classes(samples: Sequence[Sample], classes: Sequence[str], n: int
                         ) -> tuple[list[Sample], list[str]]:
    """Keep the ``n`` classes with the most images (class order kept) and renumber the labels."""
    counts = Counter(sample.label for sample in samples)
    largest = sorted(range(len(classes)), key=lambda label: (-counts[label], label))[:n]
    return select_classes(samples, classes, [classes[label] for label in sorted(largest)])


def classes_below(samples: Sequence[Sample], classes: Sequence[str], min_count: int) -> list[str]:
    """The sorted names of the classes with fewer than ``min_count`` images; one with exactly ``min_count`` stays.

    ``sample.label`` indexes ``classes``; a class without any sample counts 0 images.
    """
    counts = Counter(classes[sample.label] for sample in samples)
    return sorted(name for name in classes if counts[name] < min_count)


def drop_rare_classes(samples: Sequence[Sample], classes: Sequence[str], min_count: int, *,
                      verbose: bool = True) -> tuple[list[Sample], list[str]]:
    """Drop classes with fewer than ``min_count`` images and renumber the labels; says which were dropped."""
    counts = Counter(sample.label for sample in samples)
    rare = set(classes_below(samples, classes, min_count))
    keep = [name for name in classes if name not in rare]
    dropped = [f"{name} ({counts[label]})" for label, name in enumerate(classes) if counts[label] < min_count]
    if len(keep) < 2:
        raise DatasetError(f"Fewer than two classes have at least {min_count} images: lower min_count "
                           "or add images.")
    if dropped and verbose:
        messages.say(f"ℹ️ Dropped {len(dropped)} class(es) with fewer than {min_count} images: {', '.join(dropped)}.")
    return select_classes(samples, classes, keep)


def with_unknown_class(samples: Sequence[Sample], classes: Sequence[str], known: Sequence[str],
                       unknown_name: str = "unknown") -> tuple[list[Sample], list[str]]:
    """Keep the ``known`` classes and fold every other class into one extra class, ``unknown_name``.

    The classes become ``[*known, unknown_name]``. Groups are kept, so splitting afterwards stays
    track-aware: no track of an "unknown" sign straddles train and test either.
    """
    known = list(dict.fromkeys(known))
    missing = [name for name in known if name not in classes]
    if missing:
        raise ValueError(f"Unknown class(es) {', '.join(missing)}: the classes are {', '.join(classes)}.")
    if unknown_name in known:
        raise ValueError(f"{unknown_name!r} is already a known class: choose another unknown_name.")
    new_label = {classes.index(name): index for index, name in enumerate(known)}
    relabelled = [Sample(s.path, new_label.get(s.label, len(known)), s.group) for s in samples]
    if all(sample.label < len(known) for sample in relabelled):
        raise DatasetError("There are no images outside the known classes to build the unknown class from: "
                           "load the data set with classes='all'.")
    return relabelled, [*known, unknown_name]
