"""The hand-out of assignments: never one item twice to one worker, never more than k per item,
gold only while regular work is left."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from annotation.models import MediaItem
from crowd import services
from crowd.models import CrowdAssignment
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

    def stale(batch: Any, worker: Any, gold: Any, seen: Any) -> Any:
        calls.append(1)
        if len(calls) > 1:
            return real_regular(batch, worker, gold, seen)
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
