"""Aggregation of crowd answers: majority vote and Dawid-Skene for categorical answers, per-pixel
majority and pairwise IoU agreement for masks, and the pick of items whose agreement is too low to
trust (they go to review).

Answers come as ``(item, worker, answer)`` triples of hashable values; answers of one question must
be mutually comparable (strings, or integers), because their sorted order is what breaks ties. Only
numpy (and pycocotools through ``annotation.masks``) is used: the web tier does not carry pandas.

Dawid-Skene is crowd-kit's ``DawidSkene`` (version 1.4.2) without pandas, step for step, and the test
suite checks it against crowd-kit on generated data. The choices, all crowd-kit's:

- Classes are the answers seen, in sorted order; items and workers keep the order they first appear.
- Start: the majority-vote distribution of each item (each answer's share of the item's answers),
  priors = the mean of those distributions over items, then one M-step.
- M-step: ``confusion[w, k, c]`` = the sum, over worker ``w``'s answers ``k``, of the item's
  posterior for true class ``c``; entries of answers ``w`` gave are raised to at least 1e-10
  (crowd-kit's smoothing: no zero probability for an answer the worker has given), entries of
  answers ``w`` never gave stay 0 (they never enter a likelihood); each column (true class) is then
  normalised to sum to 1 over the answers. ``confusion[w, k, c]`` = P(w answers k | truth is c).
- E-step: log2 posterior = log2(max(prior, 1e-10)) + the sum of log2 confusion entries of the item's
  answers, shifted so that each item's largest is 0 before exponentiating, then normalised.
  Priors = the mean posterior over items.
- Each iteration is E-step, priors, M-step, then crowd-kit's loss: (the expected joint
  log-likelihood, in which the log prior is counted once per answer, plus the entropy of the
  posteriors clipped at 1e-10) divided by the number of answers. It stops when the loss grows by
  less than ``tolerance`` (default 1e-5) or after ``max_iterations`` (default 100).
- crowd-kit hands back its posteriors clipped at 1e-10 without renormalising them; here they are
  the E-step's, summing to 1. Labels are the most probable class; an exact tie goes to the first
  class in sorted order.

Each worker's accuracy is the expected share of their answers that are right under the posteriors
(the mean, over the worker's answers, of the posterior of the answer given).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from annotation.masks import mask_decode, mask_encode, rle_area, rle_iou

# crowd-kit's floor for probabilities that enter a logarithm.
EPSILON = 1e-10
DEFAULT_MAX_ITERATIONS = 100
DEFAULT_TOLERANCE = 1e-5

Answer = tuple[Hashable, Hashable, Hashable]  # (item, worker, answer)


def _sorted_classes(values: Iterable[Hashable]) -> list[Hashable]:
    try:
        return sorted(set(values))  # type: ignore[type-var]
    except TypeError:
        raise ValueError(
            "The answers to one question must be of one comparable type (all strings, or all numbers)."
        ) from None


# --- Majority vote ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vote:
    """The majority answer of one item."""

    answer: Hashable
    agreement: float  # the winning answer's share of the item's answers
    count: int  # answers given for the item
    tied: tuple[Hashable, ...] = ()  # the answers that shared the top count, sorted; empty when none did


def majority_vote(answers: Iterable[Answer]) -> dict[Hashable, Vote]:
    """The most frequent answer of each item, with its share of the answers (the item's agreement).

    A tie goes to the first of the tied answers in sorted order, so the result does not depend on
    the order answers arrive in; ``Vote.tied`` lists the tied answers so that callers can send the
    item to review."""
    by_item: dict[Hashable, Counter] = defaultdict(Counter)
    for item, _worker, answer in answers:
        by_item[item][answer] += 1
    votes: dict[Hashable, Vote] = {}
    for item, counts in by_item.items():
        top = max(counts.values())
        leaders = _sorted_classes(answer for answer, count in counts.items() if count == top)
        total = sum(counts.values())
        votes[item] = Vote(
            answer=leaders[0],
            agreement=top / total,
            count=total,
            tied=tuple(leaders) if len(leaders) > 1 else (),
        )
    return votes


# --- Dawid-Skene --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DawidSkeneResult:
    items: list[Hashable]  # row order of ``posteriors``
    classes: list[Hashable]  # column order of ``posteriors`` and ``priors``; sorted
    workers: list[Hashable]  # first axis of ``confusion``
    posteriors: np.ndarray  # (items, classes): P(item's true class is c | answers)
    priors: np.ndarray  # (classes,)
    confusion: np.ndarray  # (workers, answer given, true class): P(worker answers k | truth c)
    accuracy: np.ndarray  # (workers,): expected share of each worker's answers that are right
    iterations: int  # EM iterations run
    converged: bool  # stopped by the tolerance, not by the iteration cap

    @property
    def labels(self) -> dict[Hashable, Hashable]:
        """The most probable class of each item (an exact tie: the first in sorted order)."""
        best = self.posteriors.argmax(axis=1) if self.items else []
        return {item: self.classes[int(index)] for item, index in zip(self.items, best, strict=True)}

    def posterior(self, item: Hashable) -> dict[Hashable, float]:
        row = self.posteriors[self.items.index(item)]
        return {cls: float(p) for cls, p in zip(self.classes, row, strict=True)}

    def worker_confusion(self, worker: Hashable) -> dict[tuple[Hashable, Hashable], float]:
        """``{(answer given, true class): probability}`` of one worker."""
        matrix = self.confusion[self.workers.index(worker)]
        return {
            (given, true): float(matrix[k, c])
            for k, given in enumerate(self.classes)
            for c, true in enumerate(self.classes)
        }

    def worker_accuracy(self) -> dict[Hashable, float]:
        return {worker: float(a) for worker, a in zip(self.workers, self.accuracy, strict=True)}


def _index(values: Sequence[Hashable]) -> tuple[list[Hashable], np.ndarray]:
    """The distinct values in first-seen order and each value's position among them."""
    positions: dict[Hashable, int] = {}
    codes = np.fromiter((positions.setdefault(v, len(positions)) for v in values), dtype=np.int64, count=len(values))
    return list(positions), codes


def dawid_skene(
    answers: Iterable[Answer],
    *,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    tolerance: float = DEFAULT_TOLERANCE,
) -> DawidSkeneResult:
    """Dawid-Skene EM over categorical answers (the algorithm choices are in the module docstring)."""
    if max_iterations < 0:
        raise ValueError("max_iterations must be 0 or more.")
    rows = list(answers)
    if not rows:
        return DawidSkeneResult(
            items=[],
            classes=[],
            workers=[],
            posteriors=np.zeros((0, 0)),
            priors=np.zeros(0),
            confusion=np.zeros((0, 0, 0)),
            accuracy=np.zeros(0),
            iterations=0,
            converged=True,
        )
    items, t = _index([row[0] for row in rows])
    workers, w = _index([row[1] for row in rows])
    classes = _sorted_classes(row[2] for row in rows)
    class_index = {cls: k for k, cls in enumerate(classes)}
    a = np.fromiter((class_index[row[2]] for row in rows), dtype=np.int64, count=len(rows))
    n_items, n_workers, n_classes = len(items), len(workers), len(classes)

    given = np.zeros((n_workers, n_classes), dtype=bool)
    given[w, a] = True

    def m_step(posteriors: np.ndarray) -> np.ndarray:
        confusion = np.zeros((n_workers, n_classes, n_classes))
        np.add.at(confusion, (w, a), posteriors[t])
        confusion = np.where(given[:, :, None], np.maximum(confusion, EPSILON), 0.0)
        return confusion / confusion.sum(axis=1, keepdims=True)

    def e_step(priors: np.ndarray, confusion: np.ndarray) -> np.ndarray:
        log_likelihood = np.zeros((n_items, n_classes))
        np.add.at(log_likelihood, t, np.log2(confusion[w, a]))
        log_likelihood += np.log2(np.maximum(priors, EPSILON))
        scaled = np.exp2(log_likelihood - log_likelihood.max(axis=1, keepdims=True))
        return scaled / scaled.sum(axis=1, keepdims=True)

    def loss(posteriors: np.ndarray, priors: np.ndarray, confusion: np.ndarray) -> float:
        per_answer = np.log(confusion[w, a]) + np.log(np.maximum(priors, EPSILON))
        joint = float((posteriors[t] * per_answer).sum())
        clipped = np.maximum(posteriors, EPSILON)
        entropy = float(-(clipped * np.log(clipped)).sum())
        return (joint + entropy) / len(rows)

    counts = np.zeros((n_items, n_classes))
    np.add.at(counts, (t, a), 1.0)
    posteriors = counts / counts.sum(axis=1, keepdims=True)
    priors = posteriors.mean(axis=0)
    confusion = m_step(posteriors)

    previous = -np.inf
    iterations = 0
    converged = max_iterations == 0
    for _ in range(max_iterations):
        posteriors = e_step(priors, confusion)
        priors = posteriors.mean(axis=0)
        confusion = m_step(posteriors)
        iterations += 1
        current = loss(posteriors, priors, confusion)
        if current - previous < tolerance:
            converged = True
            break
        previous = current

    right = np.bincount(w, weights=posteriors[t, a], minlength=n_workers)
    accuracy = right / np.bincount(w, minlength=n_workers)
    return DawidSkeneResult(
        items=items,
        classes=classes,
        workers=workers,
        posteriors=posteriors,
        priors=priors,
        confusion=confusion,
        accuracy=accuracy,
        iterations=iterations,
        converged=converged,
    )


# --- Masks --------------------------------------------------------------------------------------


def _same_size(rles: Sequence[dict]) -> tuple[int, int]:
    if not rles:
        raise ValueError("No masks given.")
    sizes = {tuple(int(n) for n in rle["size"]) for rle in rles}
    if len(sizes) != 1:
        raise ValueError(f"Masks of different sizes: {sorted(sizes)}.")
    height, width = sizes.pop()
    return height, width


def mask_majority(rles: Sequence[dict]) -> dict:
    """The per-pixel majority of k masks of one item, as a compressed RLE.

    A pixel is set when at least half of the masks set it (crowd-kit's SegmentationMajorityVote
    rule): with an odd k that is a strict majority; with an even k a split pixel is kept. Masks are
    decoded one at a time into a count per pixel, so memory is one image's worth whatever k is."""
    height, width = _same_size(rles)
    votes = np.zeros((height, width), dtype=np.uint32)
    for rle in rles:
        votes += mask_decode(rle)
    return mask_encode(2 * votes >= len(rles))


def _iou(first: dict, second: dict, areas: tuple[int, int]) -> float:
    if areas == (0, 0):
        # Both answers say "nothing here": they agree, where pycocotools would say 0.
        return 1.0
    return rle_iou(first, second)


def pairwise_iou(rles: Sequence[dict]) -> np.ndarray:
    """The k × k matrix of IoUs between the masks of one item (two empty masks: 1)."""
    _same_size(rles)
    areas = [rle_area(rle) for rle in rles]
    matrix = np.eye(len(rles))
    for i, j in combinations(range(len(rles)), 2):
        matrix[i, j] = matrix[j, i] = _iou(rles[i], rles[j], (areas[i], areas[j]))
    return matrix


def mask_agreement(rles: Sequence[dict]) -> float | None:
    """The mean IoU over all pairs of an item's masks; None with fewer than two masks (nothing to
    agree with)."""
    if len(rles) < 2:
        _same_size(rles)
        return None
    matrix = pairwise_iou(rles)
    upper = np.triu_indices(len(rles), k=1)
    return float(matrix[upper].mean())


def items_for_review(agreement: Mapping[Hashable, float | None], *, threshold: float) -> list[Hashable]:
    """The items whose agreement is below ``threshold``, worst first; an item without an agreement
    (fewer than two answers) is listed first, as nothing vouches for it. Works for mask agreement
    (mean pairwise IoU) and for ``Vote.agreement`` alike. Equal agreements keep the mapping's order."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError("The agreement threshold is a share between 0 and 1.")
    below = [(item, value) for item, value in agreement.items() if value is None or value < threshold]
    below.sort(key=lambda pair: -1.0 if pair[1] is None else pair[1])
    return [item for item, _ in below]
