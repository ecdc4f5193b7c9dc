"""Aggregation of a batch into results: which answers count (not gold, not rejected), majority vote
and Dawid-Skene for answers, per-pixel majority for masks, the routing to review, and the writing of
trusted results where exports read them (item answers, object answers, crowd masks)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.utils import timezone

from annotation.masks import mask_decode, rle_area
from annotation.models import Annotation, Label
from crowd.aggregation import dawid_skene, mask_agreement, mask_majority
from crowd.models import CrowdBatch, CrowdResult
from crowd.results import batch_aggregate
from tests.crowd.helpers import crowd_setup
from tests.crowd.review_world import answer, box, worker
from tests.factories import make_image

REJECTED = "rejected"
APPROVED = "approved"


def _results(batch: CrowdBatch) -> dict[int, CrowdResult]:
    return {r.media_id: r for r in CrowdResult.objects.filter(batch=batch)}


@pytest.fixture
def answered(world: Any) -> Any:
    """Four items answered by three workers, plus a rejected answer and a gold answer:

    a: one, one, one (all agree)       b: many, many, one (2/3)
    c: one, many, and a rejected many (a tie once the rejection is left out)
    d: many from one worker only       gold item: one (never a unit)"""
    crowd = crowd_setup(world.demo, regular=4, hidden=1, qualification=0, with_test=False)
    a, b, c, d = crowd.regular
    w1, w2, w3 = (worker(world.demo, name) for name in ("w1", "w2", "w3"))
    for who, value in [(w1, "one"), (w2, "one"), (w3, "one")]:
        answer(crowd.batch, who, a, value)
    for who, value in [(w1, "many"), (w2, "many"), (w3, "one")]:
        answer(crowd.batch, who, b, value, state=APPROVED if who is w1 else "submitted")
    answer(crowd.batch, w1, c, "one")
    answer(crowd.batch, w2, c, "many")
    answer(crowd.batch, w3, c, "many", state=REJECTED)
    answer(crowd.batch, w1, d, "many")
    answer(crowd.batch, w2, crowd.hidden[0].media, "one", is_gold=True)
    answer(crowd.batch, w3, d, "", state="assigned")  # handed out, not answered yet
    crowd.items = {"a": a, "b": b, "c": c, "d": d}
    crowd.workers = (w1, w2, w3)
    crowd.side = world.demo
    return crowd


def test_it_aggregates_answers_with_dawid_skene_and_routes_doubtful_units_to_review(answered: Any) -> None:
    summary = batch_aggregate(answered.batch)

    results = _results(answered.batch)
    items = answered.items
    assert set(results) == {m.pk for m in items.values()}  # the gold item is no unit
    assert summary.units == 4 and summary.needs_review == 2 and summary.method == "dawid_skene"
    assert {r.method for r in results.values()} == {"dawid_skene"}

    a, b, c, d = (results[items[key].pk] for key in "abcd")
    assert (a.answer, a.votes, a.agreement, a.needs_review) == ("one", {"one": 3}, 1.0, False)
    assert (b.answer, b.votes, b.needs_review) == ("many", {"many": 2, "one": 1}, False)
    assert b.agreement == pytest.approx(2 / 3)
    # The rejected "many" on c does not count: one against one is a tie, which a person decides.
    assert (c.votes, c.agreement, c.needs_review) == ({"one": 1, "many": 1}, 0.5, True)
    assert (d.votes, d.agreement, d.needs_review) == ({"many": 1}, 1.0, True)

    # Dawid-Skene over the answers that count, worked out apart from the batch.
    w1, w2, w3 = (w.pk for w in answered.workers)
    triples = [
        *[((items["a"].pk, None), w, "one") for w in (w1, w2, w3)],
        ((items["b"].pk, None), w1, "many"),
        ((items["b"].pk, None), w2, "many"),
        ((items["b"].pk, None), w3, "one"),
        ((items["c"].pk, None), w1, "one"),
        ((items["c"].pk, None), w2, "many"),
        ((items["d"].pk, None), w1, "many"),
    ]
    expected = dawid_skene(triples).labels
    assert {unit[0]: label for unit, label in expected.items()} == {m: r.answer for m, r in results.items()}


def test_it_writes_trusted_answers_where_exports_read_them(answered: Any) -> None:
    summary = batch_aggregate(answered.batch)

    key = str(answered.question.pk)
    items = answered.items
    for item in items.values():
        item.refresh_from_db()
    assert items["a"].answers == {key: "one"}
    assert items["b"].answers == {key: "many"}
    assert key not in items["c"].answers and key not in items["d"].answers  # they wait for review
    assert summary.written == 2
    # Again: nothing new to write, the same results updated in place.
    again = batch_aggregate(answered.batch)
    assert again.written == 0 and CrowdResult.objects.filter(batch=answered.batch).count() == 4


def test_it_uses_the_majority_when_a_single_worker_answered(world: Any) -> None:
    crowd = crowd_setup(world.demo, regular=2, hidden=0, qualification=0, with_test=False)
    only = worker(world.demo, "solo")
    for item in crowd.regular:
        answer(crowd.batch, only, item, "many")
    summary = batch_aggregate(crowd.batch)
    assert summary.method == "majority"
    assert {(r.method, r.answer, r.needs_review) for r in _results(crowd.batch).values()} == {
        ("majority", "many", True)
    }


def test_it_sends_a_unit_below_the_threshold_to_review_and_keeps_one_at_it(world: Any) -> None:
    crowd = crowd_setup(world.demo, regular=2, hidden=0, qualification=0, with_test=False, k=5)
    CrowdBatch.objects.filter(pk=crowd.batch.pk).update(agreement_threshold=0.6)
    at, below = crowd.regular
    people = [worker(world.demo, f"p{n}") for n in range(5)]
    for who, value in zip(people, ["one", "one", "one", "many", "many"], strict=True):
        answer(crowd.batch, who, at, value)  # 3/5 = 0.6
    for who, value in zip(people[:4], ["one", "one", "many", "many"], strict=True):
        answer(crowd.batch, who, below, value)  # 2/4, a tie
    answer(crowd.batch, people[4], below, "many", state=REJECTED)
    batch_aggregate(crowd.batch)
    results = _results(crowd.batch)
    assert results[at.pk].needs_review is False
    assert results[below.pk].needs_review is True


def test_it_keeps_a_reviewers_answer_and_drops_results_left_without_answers(answered: Any) -> None:
    batch_aggregate(answered.batch)
    items = answered.items
    settled = CrowdResult.objects.get(batch=answered.batch, media=items["c"])
    settled.answer, settled.reviewed_at = "one", timezone.now()
    settled.save(update_fields=["answer", "reviewed_at"])
    # Every answer about d is rejected afterwards; one more "many" comes in for c.
    answered.batch.assignments.filter(media=items["d"]).update(state=REJECTED)
    answer(answered.batch, worker(answered.side, "w4"), items["c"], "many")

    summary = batch_aggregate(answered.batch)

    results = _results(answered.batch)
    assert items["d"].pk not in results and summary.removed == 1
    assert results[items["c"].pk].answer == "one"  # the reviewer's answer stands
    assert results[items["c"].pk].votes == {"many": 2, "one": 1}
    items["c"].refresh_from_db()
    assert items["c"].answers == {str(answered.question.pk): "one"}


def test_it_writes_object_answers_as_a_new_version_of_the_object(world: Any) -> None:
    question = world.demo.question  # "Quality", about each object of the label
    batch = CrowdBatch.objects.create(project=world.demo.project, name="Objects", question=question)
    assert batch.object_units
    obj = world.demo.annotation
    second = Annotation.objects.create(
        media=obj.media, label=obj.label, rle=obj.rle, bbox=obj.bbox, area=obj.area, author=world.annotator
    )
    for n in range(3):
        answer(batch, worker(world.demo, f"o{n}"), obj.media, "good", annotation=obj)
    answer(batch, worker(world.demo, "o3"), obj.media, "bad", annotation=second)

    batch_aggregate(batch)

    results = {r.annotation_id: r for r in CrowdResult.objects.filter(batch=batch)}
    assert set(results) == {obj.pk, second.pk}
    assert results[obj.pk].answer == "good" and results[obj.pk].needs_review is False
    assert results[second.pk].needs_review is True  # a single answer
    obj.refresh_from_db()
    second.refresh_from_db()
    assert obj.answers == {str(question.pk): "good"} and obj.version == 2
    assert obj.author == world.annotator  # the drawing is still theirs
    assert second.answers == {} and second.version == 1
    batch_aggregate(batch)
    obj.refresh_from_db()
    assert obj.version == 2  # nothing changed: no new version


def test_it_sends_a_unit_to_review_when_dawid_skene_trusts_a_minority(world: Any) -> None:
    # Four workers with one answer each: Dawid-Skene sides with "bad", which one of three gave
    # for the first object. Its agreement is that answer's share, so the unit goes to a person.
    question = world.demo.question
    batch = CrowdBatch.objects.create(project=world.demo.project, name="Objects", question=question)
    obj = world.demo.annotation
    second = Annotation.objects.create(media=obj.media, label=obj.label, rle=obj.rle, bbox=obj.bbox, area=obj.area)
    people = [worker(world.demo, f"o{n}") for n in range(4)]
    for who, value in zip(people, ["good", "good", "bad"], strict=False):
        answer(batch, who, obj.media, value, annotation=obj)
    answer(batch, people[3], obj.media, "bad", annotation=second)

    batch_aggregate(batch)

    result = CrowdResult.objects.get(batch=batch, annotation=obj)
    triples = [((obj.media_id, obj.pk), p.pk, v) for p, v in zip(people, ["good", "good", "bad"], strict=False)]
    triples.append(((obj.media_id, second.pk), people[3].pk, "bad"))
    assert result.answer == dawid_skene(triples).labels[(obj.media_id, obj.pk)] == "bad"
    assert result.agreement == pytest.approx(1 / 3) and result.needs_review is True
    obj.refresh_from_db()
    assert obj.answers == {} and obj.version == 1


def _mask_batch(world: Any) -> tuple[CrowdBatch, Any]:
    label = world.demo.label
    assert label.kind == Label.Kind.MASK
    item = make_image(world.demo.project, name="mask.png", width=40, height=30)
    batch = CrowdBatch.objects.create(
        project=world.demo.project, name="Masks", kind="mask", label=label, agreement_threshold=0.5
    )
    return batch, item


def test_it_takes_the_per_pixel_majority_of_masks_and_makes_a_crowd_annotation(world: Any) -> None:
    batch, item = _mask_batch(world)
    masks = [box(item, 5, 5, 25, 20), box(item, 6, 5, 26, 21), box(item, 10, 8, 30, 25)]
    for n, rle in enumerate(masks):
        answer(batch, worker(world.demo, f"m{n}"), item, rle=rle)
    answer(batch, worker(world.demo, "gold"), item, rle=box(item, 0, 0, 40, 30), is_gold=True)
    answer(batch, worker(world.demo, "rejected"), item, rle=box(item, 0, 0, 40, 30), state=REJECTED)

    summary = batch_aggregate(batch)

    result = CrowdResult.objects.get(batch=batch, media=item)
    votes = sum(mask_decode(rle).astype(int) for rle in masks)
    assert np.array_equal(mask_decode(result.rle), votes >= 2)
    assert result.rle == mask_majority(masks)
    assert result.agreement == pytest.approx(mask_agreement(masks))
    assert (result.method, result.votes, result.needs_review) == ("mask_majority", {"masks": 3}, False)
    crowd = Annotation.objects.get(media=item, source="crowd")
    assert crowd.label == batch.label and crowd.author is None and crowd.version == 1
    assert crowd.rle == result.rle and crowd.area == rle_area(result.rle) and summary.written == 1

    # A fourth mask moves the majority: the same annotation, at its next version.
    answer(batch, worker(world.demo, "m3"), item, rle=box(item, 10, 8, 30, 25))
    batch_aggregate(batch)
    crowd.refresh_from_db()
    assert crowd.version == 2 and crowd.rle == CrowdResult.objects.get(batch=batch, media=item).rle
    assert Annotation.objects.filter(media=item, source="crowd").count() == 1


def test_it_leaves_a_crowd_mask_a_person_has_fixed(world: Any) -> None:
    batch, item = _mask_batch(world)
    for n in range(2):
        answer(batch, worker(world.demo, f"m{n}"), item, rle=box(item, 5, 5, 25, 20))
    batch_aggregate(batch)
    crowd = Annotation.objects.get(media=item, source="crowd")
    Annotation.objects.filter(pk=crowd.pk).update(author=world.reviewer, version=2)
    answer(batch, worker(world.demo, "m2"), item, rle=box(item, 0, 0, 40, 30))
    answer(batch, worker(world.demo, "m3"), item, rle=box(item, 0, 0, 40, 30))

    batch_aggregate(batch)

    crowd.refresh_from_db()
    assert crowd.version == 2 and crowd.rle == box(item, 5, 5, 25, 20)


def test_it_writes_no_mask_for_a_unit_that_needs_review(world: Any) -> None:
    batch, item = _mask_batch(world)
    answer(batch, worker(world.demo, "m0"), item, rle=box(item, 0, 0, 10, 10))
    answer(batch, worker(world.demo, "m1"), item, rle=box(item, 20, 15, 40, 30))
    summary = batch_aggregate(batch)
    result = CrowdResult.objects.get(batch=batch, media=item)
    assert result.agreement == 0.0 and result.needs_review is True
    assert summary.written == 0 and not Annotation.objects.filter(media=item, source="crowd").exists()


def test_it_sends_masks_it_cannot_read_to_review(world: Any) -> None:
    batch, item = _mask_batch(world)
    answer(batch, worker(world.demo, "m0"), item, rle=box(item, 0, 0, 10, 10))
    answer(batch, worker(world.demo, "m1"), item, rle={"size": [10, 10], "counts": "00"})
    batch_aggregate(batch)
    result = CrowdResult.objects.get(batch=batch, media=item)
    assert (result.needs_review, result.rle, result.agreement) == (True, {}, None)
