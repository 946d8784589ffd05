"""Near-duplicates: test images that (almost) repeat a training image, found by the similarity of their features.

A folder of your own photos often holds bursts: several shots of one object a second apart. Split image by image,
one shot lands in training and its twin in the test part, and the test measures recall of a seen object, not
recognition of a new one: the same leak as lesson 1's tracks of traffic signs. Two images are near-duplicates
when the **cosine similarity** of their backbone features (the cached features of
:func:`course_utils.features.compute_features`) reaches a threshold: 1 means the same direction in feature space.

    report = find_near_duplicates(cached["train"][0], cached["test"][0], split.train, split.test)
    print(report)                       # one line: how many test images have a near-copy in training
    report.pairs.head()                 # the closest pairs, most similar first
    plots.plot_near_duplicates(report)  # see them side by side
    samples = group_near_duplicates(all_features, samples)  # before splitting: near-copies share a group

Why 0.95 by default: on the course's synthetic signs (frames of one track are the near-duplicates) it caught most
frames of a track and almost no image of another track, where 0.90 also caught many of other tracks (the figures
are in ``benchmarks/README.md``, "Figures behind the package's defaults"). Other backbones and image sizes spread
the similarities differently: look at the closest pairs before you trust it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from course_utils import messages
from course_utils.samples import Sample

__all__ = ["DEFAULT_THRESHOLD", "NearDuplicates", "cosine_similarities", "find_near_duplicates",
           "group_near_duplicates"]

#: Cosine similarity from which two images count as near-duplicates (see the module's docstring).
DEFAULT_THRESHOLD = 0.95
_CHUNK = 1024  # rows compared at once: bounds the memory of the similarity matrix


def _check_features(features: torch.Tensor, name: str, samples: Sequence[Sample] | None = None) -> torch.Tensor:
    features = torch.as_tensor(features)
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"{name} must be a 2-D tensor with one row of features per image, got shape "
                         f"{tuple(features.shape)}.")
    if samples is not None and len(samples) != len(features):
        raise ValueError(f"{name} has {len(features)} rows for {len(samples)} samples: pass the samples in the "
                         "order their features were computed (a loader with shuffle=False).")
    return features.float()


def cosine_similarities(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """The cosine similarity of every row of ``first`` with every row of ``second``: a ``(len(first),
    len(second))`` tensor in [-1, 1]. A row of zeros is similar to nothing (0)."""
    first = torch.nn.functional.normalize(torch.as_tensor(first).float(), dim=1)
    second = torch.nn.functional.normalize(torch.as_tensor(second).float(), dim=1)
    return first @ second.T


@dataclass
class NearDuplicates:
    """What :func:`find_near_duplicates` found.

    ``pairs`` has one row per test image whose most similar training image reaches ``threshold``, most similar
    first: ``test_index`` and ``train_index`` (positions in the lists you passed), ``similarity``, and
    ``test_path``/``train_path`` when samples were given. ``test_images`` is how many test images were checked.
    """

    pairs: pd.DataFrame
    threshold: float
    test_images: int

    @property
    def count(self) -> int:
        """How many test images have a near-duplicate in training."""
        return len(self.pairs)

    @property
    def share(self) -> float:
        """The share of test images with a near-duplicate in training, between 0 and 1."""
        return self.count / self.test_images if self.test_images else 0.0

    def __str__(self) -> str:
        closest = f"; closest pair {self.pairs['similarity'].iloc[0]:.3f}" if self.count else ""
        return (f"{self.count} of {self.test_images} test images ({self.share:.1%}) have a near-duplicate in "
                f"training (cosine similarity >= {self.threshold:g}){closest}")


def find_near_duplicates(train_features: torch.Tensor, test_features: torch.Tensor,
                         train_samples: Sequence[Sample] | None = None, test_samples: Sequence[Sample] | None = None,
                         *, threshold: float = DEFAULT_THRESHOLD, verbose: bool = True) -> NearDuplicates:
    """Find, for every test image, its most similar training image; keep the pairs at or above ``threshold``.

    The features are one row per image (cached features of the same backbone for both parts); pass the samples
    (in the same order) to get file paths in the table and pictures in :func:`course_utils.plots.plot_near_duplicates`.
    Prints the one-line summary (``verbose``). When *every* test image has a near-duplicate in training, one
    line warns that the test then measures recall of seen images: regroup with :func:`group_near_duplicates`.
    """
    if not -1 <= threshold <= 1:
        raise ValueError(f"threshold is a cosine similarity, between -1 and 1; got {threshold}.")
    train_features = _check_features(train_features, "train_features", train_samples)
    test_features = _check_features(test_features, "test_features", test_samples)
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(f"Train and test features differ in width ({train_features.shape[1]} vs "
                         f"{test_features.shape[1]}): compute both with the same backbone.")
    best_similarity, best_index = [], []
    for start in range(0, len(test_features), _CHUNK):
        similarity, index = cosine_similarities(test_features[start:start + _CHUNK], train_features).max(dim=1)
        best_similarity.append(similarity)
        best_index.append(index)
    similarity, index = torch.cat(best_similarity), torch.cat(best_index)
    test_index = torch.nonzero(similarity >= threshold).flatten()
    pairs = pd.DataFrame({"test_index": test_index.tolist(), "train_index": index[test_index].tolist(),
                          "similarity": similarity[test_index].tolist()})
    if test_samples is not None and train_samples is not None:
        pairs["test_path"] = [test_samples[i].path for i in pairs["test_index"]]
        pairs["train_path"] = [train_samples[i].path for i in pairs["train_index"]]
    pairs = pairs.sort_values(["similarity", "test_index"], ascending=[False, True], ignore_index=True)
    report = NearDuplicates(pairs, threshold, len(test_features))
    if report.count == report.test_images:
        messages.warn(f"⚠️ Every test image ({report.count}) has a near-duplicate in training (cosine similarity >= "
                      f"{threshold:g}): the test accuracy would measure recall of seen images; group them with "
                      "near_duplicates.group_near_duplicates() before splitting, or raise the threshold.")
    elif verbose:
        messages.say(str(report))
    return report


def group_near_duplicates(features: torch.Tensor, samples: Sequence[Sample], *,
                          threshold: float = DEFAULT_THRESHOLD, verbose: bool = True) -> list[Sample]:
    """The samples with near-duplicates merged into one group, for a group-aware split.

    Two images whose features reach ``threshold`` (cosine similarity) end up in the same group, and so does
    everything already grouped with either of them (a chain of near-copies forms one group, as do tracks).
    :func:`course_utils.splits.split_samples` then keeps each group in one part, so no near-copy of a test image
    is in training. The merged group is named after its first group in sorted order; labels and paths stay.
    Prints how many groups remain (``verbose``), and one warning line when every image has a near-duplicate.
    """
    if not -1 <= threshold <= 1:
        raise ValueError(f"threshold is a cosine similarity, between -1 and 1; got {threshold}.")
    features = _check_features(features, "features", samples)
    parent = {group: group for group in sorted({sample.group for sample in samples})}

    def root(group: str) -> str:
        while parent[group] != group:
            parent[group] = parent[parent[group]]  # path halving keeps the chains short
            group = parent[group]
        return group

    has_twin = torch.zeros(len(samples), dtype=torch.bool)
    for start in range(0, len(features), _CHUNK):
        similar = cosine_similarities(features[start:start + _CHUNK], features) >= threshold
        rows = torch.arange(start, start + len(similar))
        similar[torch.arange(len(similar)), rows] = False  # an image is not its own duplicate
        has_twin[rows] = similar.any(dim=1)
        for row, column in torch.nonzero(similar).tolist():
            first, second = root(samples[start + row].group), root(samples[column].group)
            if first != second:
                parent[max(first, second)] = min(first, second)
    grouped = [Sample(sample.path, sample.label, root(sample.group)) for sample in samples]
    groups_before, groups_after = len(parent), len({sample.group for sample in grouped})
    if len(samples) > 1 and bool(has_twin.all()):
        messages.warn(
            f"⚠️ Every image ({len(samples)}) has a near-duplicate (cosine similarity >= {threshold:g}): they "
            f"form {groups_after} group(s); a split keeps each group in one part, so check that enough groups "
            "remain per class, or raise the threshold.")
    elif verbose:
        messages.say(f"Near-duplicates (cosine similarity >= {threshold:g}) merged {groups_before} groups into "
                     f"{groups_after}; {int(has_twin.sum())} of {len(samples)} images have a near-duplicate.")
    return grouped
