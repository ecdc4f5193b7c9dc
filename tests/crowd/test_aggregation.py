"""Aggregation of crowd answers: majority vote, Dawid-Skene and mask agreement on small cases worked
out by hand, then against crowd-kit (the reference implementation) on generated crowds with known
confusion matrices and missing answers, and the pick of items that go to review."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from annotation.masks import mask_decode, mask_encode
from crowd.aggregation import (
    EPSILON,
    Vote,
    dawid_skene,
    items_for_review,
    majority_vote,
    mask_agreement,
    mask_majority,
    pairwise_iou,
)
from tests.crowd.crowdkit_reference import crowdkit_module

# crowd-kit 1.4.2 uses pandas keywords (inplace=, copy=) that pandas 3.1 deprecates: its business.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:crowdkit")

# --- Generated crowds ---------------------------------------------------------------------------


def worker_confusions(rng: np.random.Generator, n_classes: int, n_workers: int) -> list[np.ndarray]:
    """P(answer | truth) per worker, as rows = truth: careful, middling, spamming and biased workers."""
    confusions = []
    for w in range(n_workers):
        kind = w % 4
        if kind == 2:  # answers at random
            matrix = np.full((n_classes, n_classes), 1 / n_classes)
        elif kind == 3:  # leans towards the first class whatever the truth
            matrix = np.full((n_classes, n_classes), 0.1 / max(n_classes - 2, 1))
            np.fill_diagonal(matrix, 0.3)
            matrix[:, 0] += 1 - matrix.sum(axis=1)
        else:
            accuracy = rng.uniform(0.8, 0.95) if kind == 0 else rng.uniform(0.5, 0.75)
            matrix = np.full((n_classes, n_classes), (1 - accuracy) / (n_classes - 1))
            np.fill_diagonal(matrix, accuracy)
        confusions.append(matrix)
    return confusions


def generated_crowd(
    seed: int, classes: Sequence[Hashable], *, n_items: int = 150, n_workers: int = 8, answer_rate: float = 0.5
) -> tuple[list[tuple[Hashable, Hashable, Hashable]], dict[Hashable, Hashable]]:
    """Answers of a crowd in which each worker answers about ``answer_rate`` of the items (at least
    one answer per item), and the true class of each item."""
    rng = np.random.default_rng(seed)
    n_classes = len(classes)
    confusions = worker_confusions(rng, n_classes, n_workers)
    priors = rng.dirichlet(np.full(n_classes, 4.0))
    answers: list[tuple[Hashable, Hashable, Hashable]] = []
    truth: dict[Hashable, Hashable] = {}
    for i in range(n_items):
        item = f"item-{i}"
        true_class = int(rng.choice(n_classes, p=priors))
        truth[item] = classes[true_class]
        who = np.flatnonzero(rng.random(n_workers) < answer_rate)
        if who.size == 0:
            who = np.array([rng.integers(n_workers)])
        for w in who:
            given = int(rng.choice(n_classes, p=confusions[w][true_class]))
            answers.append((item, f"worker-{w}", classes[given]))
    # Arrival order is not sorted by item: the aggregation must not care.
    order = rng.permutation(len(answers))
    return [answers[k] for k in order], truth


def frame(answers: Sequence[tuple[Hashable, Hashable, Hashable]]) -> pd.DataFrame:
    return pd.DataFrame(answers, columns=["task", "worker", "label"])


def crowdkit_dawid_skene(answers: Sequence[tuple[Hashable, Hashable, Hashable]], *, n_iter: int = 100) -> Any:
    reference = crowdkit_module("classification.dawid_skene").DawidSkene(n_iter=n_iter, tol=1e-5)
    return reference.fit(frame(answers))


STRING_CLASSES = ("few", "many", "one")
INT_CLASSES = (0, 1, 2, 3)
CROWDS = [(seed, STRING_CLASSES) for seed in range(5)] + [(seed, INT_CLASSES) for seed in (5, 6)]


# --- Majority vote ------------------------------------------------------------------------------


def test_it_takes_the_most_frequent_answer_with_its_share() -> None:
    answers = [
        ("a", "w1", "one"),
        ("a", "w2", "one"),
        ("a", "w3", "many"),
        ("b", "w1", "many"),
        ("c", "w2", "one"),
        ("c", "w3", "one"),
        ("c", "w4", "one"),
        ("c", "w5", "many"),
    ]
    votes = majority_vote(answers)
    assert votes["a"] == Vote(answer="one", agreement=pytest.approx(2 / 3), count=3)
    assert votes["b"] == Vote(answer="many", agreement=1.0, count=1)
    assert votes["c"] == Vote(answer="one", agreement=0.75, count=4)


def test_it_breaks_ties_the_same_way_whatever_the_order_and_reports_them() -> None:
    answers = [("a", "w1", "one"), ("a", "w2", "many"), ("a", "w3", "few"), ("a", "w4", "one"), ("a", "w5", "many")]
    for ordering in (answers, answers[::-1], answers[2:] + answers[:2]):
        vote = majority_vote(ordering)["a"]
        # "many" and "one" have two answers each: the first in sorted order wins, both are reported.
        assert vote == Vote(answer="many", agreement=0.4, count=5, tied=("many", "one"))


def test_it_refuses_answers_that_cannot_be_ordered() -> None:
    with pytest.raises(ValueError, match="comparable"):
        majority_vote([("a", "w1", "one"), ("a", "w2", 1)])
    with pytest.raises(ValueError, match="comparable"):
        dawid_skene([("a", "w1", "one"), ("b", "w2", 1)])


@pytest.mark.parametrize(("seed", "classes"), CROWDS[:3])
def test_it_matches_crowdkits_majority_vote(seed: int, classes: Sequence[Hashable]) -> None:
    answers, _truth = generated_crowd(seed, classes)
    reference = crowdkit_module("classification.majority_vote").MajorityVote().fit(frame(answers))
    votes = majority_vote(answers)
    assert set(votes) == set(reference.probas_.index)
    for item, vote in votes.items():
        shares = reference.probas_.loc[item]
        assert vote.agreement == pytest.approx(float(shares.max()), abs=1e-12)
        assert vote.count == sum(1 for answer in answers if answer[0] == item)
        if not vote.tied:
            assert vote.answer == reference.labels_[item]
        else:
            assert set(vote.tied) == set(shares[shares == shares.max()].index)


# --- Dawid-Skene, worked by hand ----------------------------------------------------------------

# Item 1: w1 and w2 say "a", w3 says "b". Item 2: all three say "b".
HAND = [
    ("i1", "w1", "a"),
    ("i1", "w2", "a"),
    ("i1", "w3", "b"),
    ("i2", "w1", "b"),
    ("i2", "w2", "b"),
    ("i2", "w3", "b"),
]


def test_it_starts_dawid_skene_from_the_majority_vote() -> None:
    result = dawid_skene(HAND, max_iterations=0)
    assert (result.items, result.workers, result.classes) == (["i1", "i2"], ["w1", "w2", "w3"], ["a", "b"])
    # Majority-vote distributions and their mean as priors.
    np.testing.assert_allclose(result.posteriors, [[2 / 3, 1 / 3], [0, 1]])
    np.testing.assert_allclose(result.priors, [1 / 3, 2 / 3])
    # w1 answered "a" on i1 (posterior 2/3, 1/3) and "b" on i2 (0, 1). Column "truth a": 2/3 for
    # "a", 0 raised to 1e-10 for "b", normalised; column "truth b": 1/3 and 1, normalised to 1/4, 3/4.
    w1 = result.confusion[0]
    np.testing.assert_allclose(w1, [[(2 / 3) / (2 / 3 + EPSILON), 0.25], [EPSILON / (2 / 3 + EPSILON), 0.75]])
    np.testing.assert_allclose(result.confusion[1], w1)
    # w3 only ever said "b": that row takes all of each column, the "a" row stays 0.
    np.testing.assert_array_equal(result.confusion[2], [[0, 0], [1, 1]])
    # Accuracy: the mean posterior of the answers given (w1: 2/3 and 1; w3: 1/3 and 1).
    np.testing.assert_allclose(result.accuracy, [5 / 6, 5 / 6, 2 / 3])
    assert result.iterations == 0


def test_it_runs_one_em_iteration_as_worked_out() -> None:
    result = dawid_skene(HAND, max_iterations=1)
    # Item 1 after one E-step: "a" ∝ 1/3 · 1 · 1 · 1 (w3's "b" row is 1 under both truths) and
    # "b" ∝ 2/3 · 1/4 · 1/4 · 1 = 1/24, so P(a) = (1/3) / (1/3 + 1/24) = 8/9. Item 2: "a" needs
    # w1 and w2 to have said "b" under truth "a", which they did with probability ~1.5e-10 each.
    np.testing.assert_allclose(result.posteriors, [[8 / 9, 1 / 9], [0, 1]], atol=1e-9)
    assert result.labels == {"i1": "a", "i2": "b"}
    assert result.posterior("i1") == pytest.approx({"a": 8 / 9, "b": 1 / 9})
    assert result.iterations == 1 and not result.converged


def test_it_reads_results_by_item_and_worker() -> None:
    result = dawid_skene(HAND)
    assert result.converged and 1 <= result.iterations < 100
    confusion = result.worker_confusion("w3")
    assert set(confusion) == {("a", "a"), ("a", "b"), ("b", "a"), ("b", "b")}
    assert confusion[("a", "a")] == 0.0 and confusion[("b", "b")] == pytest.approx(1.0)
    accuracy = result.worker_accuracy()
    assert set(accuracy) == {"w1", "w2", "w3"} and accuracy["w1"] > accuracy["w3"]


def test_it_handles_no_answers() -> None:
    result = dawid_skene([])
    assert result.labels == {} and result.posteriors.shape == (0, 0) and result.converged
    assert majority_vote([]) == {}


# --- Dawid-Skene against crowd-kit --------------------------------------------------------------


@pytest.mark.parametrize(("seed", "classes"), CROWDS)
def test_it_matches_crowdkits_dawid_skene(seed: int, classes: Sequence[Hashable]) -> None:
    answers, _truth = generated_crowd(seed, classes)
    reference = crowdkit_dawid_skene(answers)
    result = dawid_skene(answers)

    assert result.classes == sorted(reference.probas_.columns)
    assert set(result.items) == set(reference.probas_.index)
    # Same label on every item.
    assert result.labels == {item: reference.labels_[item] for item in result.items}
    # Same posteriors (crowd-kit hands them back clipped at 1e-10), priors and stopping point.
    expected = reference.probas_.loc[result.items, result.classes].to_numpy(dtype=float)
    np.testing.assert_allclose(result.posteriors, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result.priors, reference.priors_[result.classes].to_numpy(dtype=float), atol=1e-12)
    assert result.iterations == len(reference.loss_history_) and result.converged
    # Same confusion matrices: crowd-kit keeps rows only for answers a worker gave; the others are 0 here.
    given = set()
    for (worker, answer), row in reference.errors_.iterrows():
        w, k = result.workers.index(worker), result.classes.index(answer)
        np.testing.assert_allclose(result.confusion[w, k], row[result.classes].to_numpy(dtype=float), atol=1e-12)
        given.add((w, k))
    for w in range(len(result.workers)):
        for k in range(len(result.classes)):
            if (w, k) not in given:
                assert not result.confusion[w, k].any()


def test_it_matches_crowdkit_when_the_iteration_cap_stops_it() -> None:
    answers, _truth = generated_crowd(3, STRING_CLASSES)
    reference = crowdkit_dawid_skene(answers, n_iter=2)
    result = dawid_skene(answers, max_iterations=2)
    assert result.iterations == 2 and not result.converged
    expected = reference.probas_.loc[result.items, result.classes].to_numpy(dtype=float)
    np.testing.assert_allclose(result.posteriors, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_it_outvotes_spammers_better_than_the_majority(seed: int) -> None:
    answers, truth = generated_crowd(seed, STRING_CLASSES, n_items=300)
    votes = majority_vote(answers)
    labels = dawid_skene(answers).labels
    right_by_vote = sum(votes[item].answer == truth[item] for item in truth)
    right_by_model = sum(labels[item] == truth[item] for item in truth)
    assert right_by_model > right_by_vote


# --- Masks ----------------------------------------------------------------------------------------


def rows_mask(first: int, last: int, *, shape: tuple[int, int] = (4, 4)) -> dict:
    """A mask with rows ``first`` to ``last`` (inclusive) set."""
    mask = np.zeros(shape, dtype=bool)
    mask[first : last + 1] = True
    return mask_encode(mask)


def test_it_keeps_pixels_that_most_workers_drew() -> None:
    masks = [rows_mask(0, 1), rows_mask(1, 2), rows_mask(1, 3)]
    # Votes per row: 1, 3, 2, 1 of 3 → rows 1 and 2.
    merged = mask_majority(masks)
    assert isinstance(merged["counts"], str) and merged["size"] == [4, 4]
    np.testing.assert_array_equal(mask_decode(merged), mask_decode(rows_mask(1, 2)))


def test_it_keeps_pixels_split_evenly() -> None:
    # Two workers, each pixel of one of them: "at least half" keeps the union, as crowd-kit does.
    merged = mask_decode(mask_majority([rows_mask(0, 1), rows_mask(1, 2)]))
    np.testing.assert_array_equal(merged, mask_decode(rows_mask(0, 2)))


@pytest.mark.parametrize("k", [3, 4, 5])
def test_it_matches_crowdkits_segmentation_majority_vote(k: int) -> None:
    rng = np.random.default_rng(k)
    base = rng.random((30, 40)) < 0.4
    arrays = [base ^ (rng.random(base.shape) < 0.2) for _ in range(k)]
    reference_class = crowdkit_module("image_segmentation.segmentation_majority_vote").SegmentationMajorityVote
    data = pd.DataFrame({"task": ["item"] * k, "worker": [f"w{i}" for i in range(k)], "segmentation": arrays})
    expected = reference_class().fit_predict(data)["item"]
    np.testing.assert_array_equal(mask_decode(mask_majority([mask_encode(a) for a in arrays])), expected)


def test_it_measures_pairwise_iou() -> None:
    masks = [rows_mask(0, 1), rows_mask(1, 2), rows_mask(1, 3)]
    # 8, 8 and 12 pixels; overlaps of one row (4) between the first and the others, two rows (8)
    # between the last two: IoUs 4/12, 4/16 and 8/12.
    matrix = pairwise_iou(masks)
    np.testing.assert_allclose(matrix, [[1, 1 / 3, 1 / 4], [1 / 3, 1, 2 / 3], [1 / 4, 2 / 3, 1]])
    assert mask_agreement(masks) == pytest.approx((1 / 3 + 1 / 4 + 2 / 3) / 3)  # 5/12


def test_it_counts_two_empty_masks_as_agreeing() -> None:
    empty = mask_encode(np.zeros((4, 4), dtype=bool))
    assert mask_agreement([empty, empty]) == 1.0
    assert mask_agreement([empty, rows_mask(0, 0)]) == 0.0


def test_it_has_no_agreement_for_a_single_mask() -> None:
    assert mask_agreement([rows_mask(0, 1)]) is None
    with pytest.raises(ValueError):
        mask_agreement([])


def test_it_refuses_masks_of_different_sizes_and_broken_rle() -> None:
    with pytest.raises(ValueError, match="different sizes"):
        mask_majority([rows_mask(0, 1), rows_mask(0, 1, shape=(4, 5))])
    with pytest.raises(ValueError, match="different sizes"):
        mask_agreement([rows_mask(0, 1), rows_mask(0, 1, shape=(5, 4))])
    with pytest.raises(ValidationError):
        mask_majority([rows_mask(0, 1), {"size": [4, 4], "counts": "not-an-rle"}])


# --- Review -------------------------------------------------------------------------------------


def test_it_sends_items_below_the_threshold_to_review_worst_first() -> None:
    agreement = {"a": 0.9, "b": 0.4, "c": None, "d": 0.75, "e": 0.7, "f": 0.4}
    assert items_for_review(agreement, threshold=0.75) == ["c", "b", "f", "e"]
    assert items_for_review(agreement, threshold=0.0) == ["c"]
    with pytest.raises(ValueError):
        items_for_review(agreement, threshold=75)


def test_it_reviews_answers_and_masks_by_the_same_rule() -> None:
    votes = majority_vote([("x", "w1", "one"), ("x", "w2", "one"), ("y", "w1", "one"), ("y", "w2", "many")])
    assert items_for_review({item: vote.agreement for item, vote in votes.items()}, threshold=0.6) == ["y"]
    masks = {"m1": [rows_mask(0, 1), rows_mask(0, 1)], "m2": [rows_mask(0, 0), rows_mask(3, 3)]}
    assert items_for_review({item: mask_agreement(rles) for item, rles in masks.items()}, threshold=0.5) == ["m2"]


def test_it_keeps_pandas_and_crowdkit_out_of_the_web_tier() -> None:
    # A fresh interpreter: this test process has crowd-kit and pandas loaded already.
    script = (
        "import sys, django; django.setup(); import crowd.aggregation, crowd.mturk; "
        "print(','.join(sorted(m for m in ('pandas', 'crowdkit', 'sklearn', 'nltk') if m in sys.modules)))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""
