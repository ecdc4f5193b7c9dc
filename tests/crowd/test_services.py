"""The hand-out of assignments: never one item twice to one worker, never more than k per item,
gold only while regular work is left; expired assignments give their unit back; gold for both
purposes serves the test and hides in batches, never both to one worker."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from annotation.models import MediaItem
from crowd import services
from crowd.models import CrowdAssignment, GoldItem
from tests.crowd.helpers import crowd_setup


def _drain(batch: Any, worker: Any, session: str) -> list[CrowdAssignment]:
    given = []
    while assignment := services.assignment_next(batch=batch, worker=worker, context={"session_id": session}):
        given.append(assignment)
        services.assignment_submit(assignment=assignment, answer="one")
    return given


def test_it_hands_out_each_item_at_most_k_times_and_once_per_worker(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    crowd = crowd_setup(world.demo, regular=3, hidden=2, k=2, gold_rate=0.5, with_test=False)
    draws = iter([0.1, 0.9, 0.7, 0.2, 0.3] * 20)
    monkeypatch.setattr(services, "_draw", lambda: next(draws))
    workers = [services.worker_enter(batch=crowd.batch, external_id=f"p{n}") for n in range(4)]
    for worker in workers:
        for session in ("a", "b"):  # a second visit never repeats an item either
            _drain(crowd.batch, worker, session)

    rows = CrowdAssignment.objects.all()
    per_worker = Counter((a.worker_id, a.media_id) for a in rows)
    assert max(per_worker.values()) == 1
    regular = Counter(a.media_id for a in rows if not a.is_gold)
    assert regular == {m.pk: 2 for m in crowd.regular}  # every item reached k, none went past it
    assert rows.filter(is_gold=True).exists()
    assert set(rows.filter(is_gold=True).values_list("media", flat=True)) <= {g.media_id for g in crowd.hidden}
    assert not rows.filter(media__in=[g.media_id for g in crowd.qualification]).exists()


def test_it_gives_back_the_open_assignment_of_a_visit(world: Any) -> None:
    crowd = crowd_setup(world.demo, with_test=False)
    worker = services.worker_enter(batch=crowd.batch, external_id="p")
    first = services.assignment_next(batch=crowd.batch, worker=worker, context={"session_id": "s"})
    again = services.assignment_next(batch=crowd.batch, worker=worker, context={"session_id": "s"})
    assert first == again
    assert CrowdAssignment.objects.count() == 1


def test_it_recounts_an_item_after_locking_it(world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another worker's hand-out committed between the count and the lock: the item is full now.
    crowd = crowd_setup(world.demo, regular=2, hidden=0, k=1, with_test=False)
    first_item = crowd.regular[0]
    other = services.worker_enter(batch=crowd.batch, external_id="other")
    real_regular = services._regular
    calls = []

    def stale(batch: Any, gold: Any, seen: Any) -> Any:
        calls.append(1)
        if len(calls) > 1:
            return real_regular(batch, gold, seen)
        # The first query read a snapshot from before the other hand-out committed.
        return MediaItem.objects.filter(pk__in=[m.pk for m in crowd.regular]).order_by("pk")

    CrowdAssignment.objects.create(batch=crowd.batch, worker=other, media=first_item)
    monkeypatch.setattr(services, "_regular", stale)
    worker = services.worker_enter(batch=crowd.batch, external_id="p")
    given = services.assignment_next(batch=crowd.batch, worker=worker, context={"session_id": "s"})
    assert given is not None and given.media == crowd.regular[1]
    assert CrowdAssignment.objects.filter(media=first_item).count() == 1
    assert len(calls) == 2  # the first pick was refused after the recount


@pytest.mark.django_db(transaction=True)
def test_it_hands_out_concurrently_without_going_past_k(world: Any) -> None:
    # Real row locks need PostgreSQL (SQLite has no SELECT … FOR UPDATE): the PostgreSQL pass runs it.
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("SELECT … FOR UPDATE SKIP LOCKED needs PostgreSQL")
    import threading

    from django.db import connections

    crowd = crowd_setup(world.demo, regular=3, hidden=0, k=2, with_test=False)
    workers = [services.worker_enter(batch=crowd.batch, external_id=f"p{n}") for n in range(6)]
    start = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def work(worker: Any) -> None:
        try:
            start.wait()
            _drain(crowd.batch, worker, "s")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = CrowdAssignment.objects.all()
    assert Counter(a.media_id for a in rows) == {m.pk: 2 for m in crowd.regular}
    assert max(Counter((a.worker_id, a.media_id) for a in rows).values()) == 1


# --- expiry ---------------------------------------------------------------------------------
def _expire(assignment: CrowdAssignment) -> None:
    CrowdAssignment.objects.filter(pk=assignment.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def test_it_sets_the_expiry_at_hand_out(world: Any) -> None:
    crowd = crowd_setup(world.demo, with_test=False)
    crowd.batch.assignment_minutes = 20
    crowd.batch.save(update_fields=["assignment_minutes"])
    worker = services.worker_enter(batch=crowd.batch, external_id="p")
    before = timezone.now()
    given = services.assignment_next(batch=crowd.batch, worker=worker, context={"session_id": "s"})
    assert before + timedelta(minutes=20) <= given.expires_at <= timezone.now() + timedelta(minutes=20)


def test_it_no_longer_counts_an_expired_assignment_toward_k(world: Any) -> None:
    crowd = crowd_setup(world.demo, regular=1, hidden=0, k=1, with_test=False)
    first, second = (services.worker_enter(batch=crowd.batch, external_id=pid) for pid in ("a", "b"))
    held = services.assignment_next(batch=crowd.batch, worker=first, context={"session_id": "s"})
    assert services.assignment_next(batch=crowd.batch, worker=second, context={"session_id": "s"}) is None
    _expire(held)
    given = services.assignment_next(batch=crowd.batch, worker=second, context={"session_id": "s"})
    assert given is not None and given.media == held.media
    # The expired row stays until its worker comes back (so its link can say it expired).
    assert CrowdAssignment.objects.filter(pk=held.pk, state="assigned").exists()


def test_it_gives_a_returning_worker_a_fresh_assignment_for_an_expired_one(world: Any) -> None:
    crowd = crowd_setup(world.demo, regular=2, hidden=0, k=1, with_test=False)
    worker = services.worker_enter(batch=crowd.batch, external_id="p")
    held = services.assignment_next(batch=crowd.batch, worker=worker, context={"session_id": "s"})
    _expire(held)
    fresh = services.assignment_next(batch=crowd.batch, worker=worker, context={"session_id": "s"})
    # The expired row is deleted, not reused: a new row (the unit may be the same: it is free again).
    assert fresh.pk != held.pk and fresh.expires_at > timezone.now()
    assert not CrowdAssignment.objects.filter(pk=held.pk).exists()
    assert list(CrowdAssignment.objects.filter(worker=worker)) == [fresh]


def test_it_hands_out_again_under_the_same_mturk_assignment_after_expiry(world: Any) -> None:
    crowd = crowd_setup(world.demo, provider="mturk", regular=2, hidden=0, with_test=False)
    worker = services.worker_enter(batch=crowd.batch, external_id="W")
    context = {"assignment_id": "A1", "hit_id": "H1", "turk_submit_to": "https://workersandbox.mturk.com"}
    held = services.assignment_next(batch=crowd.batch, worker=worker, context=context)
    _expire(held)
    fresh = services.assignment_next(batch=crowd.batch, worker=worker, context=context)
    assert fresh is not None and fresh.pk != held.pk and fresh.assignment_id == "A1"


def test_it_refuses_an_answer_after_expiry(world: Any) -> None:
    crowd = crowd_setup(world.demo, with_test=False)
    worker = services.worker_enter(batch=crowd.batch, external_id="p")
    held = services.assignment_next(batch=crowd.batch, worker=worker, context={"session_id": "s"})
    _expire(held)
    with pytest.raises(ValidationError, match="This assignment has expired") as refused:
        services.assignment_submit(assignment=held, answer="one")
    assert refused.value.code == "expired"
    held.refresh_from_db()
    assert (held.state, held.answer, held.submitted_at) == ("assigned", "", None)


# --- gold for both purposes -------------------------------------------------------------------
def test_it_uses_gold_for_both_in_the_test_and_hidden_but_never_both_to_one_worker(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    crowd = crowd_setup(world.demo, regular=3, hidden=1, qualification=2, gold_rate=1.0)
    both = crowd.qualification[1]
    GoldItem.objects.filter(pk=both.pk).update(purpose=GoldItem.Purpose.BOTH)
    monkeypatch.setattr(services, "_draw", lambda: 0.0)

    tested = services.worker_enter(batch=crowd.batch, external_id="tested")
    qualification = services.qualification_begin(worker=tested, batch=crowd.batch, context={})
    assert sorted(qualification.attempt.items) == sorted(g.pk for g in crowd.qualification)
    answers = ["one"] * len(crowd.qualification)
    services.qualification_submit(attempt=qualification.attempt, answers=answers)
    given = _drain(crowd.batch, tested, "s")
    assert {a.media_id for a in given if a.is_gold} == {crowd.hidden[0].media_id}

    # A worker who has not seen it in a test gets it as hidden gold, scored like any.
    untested = services.worker_enter(batch=crowd.batch, external_id="untested")
    given = _drain(crowd.batch, untested, "s")
    assert {a.media_id for a in given if a.is_gold} == {crowd.hidden[0].media_id, both.media_id}
    on_both = CrowdAssignment.objects.get(worker=untested, media=both.media_id)
    assert on_both.gold_correct is True  # its answer is "one"
    # Never handed out as a regular item.
    assert not CrowdAssignment.objects.filter(media=both.media_id, is_gold=False).exists()
