"""The Mechanical Turk operations on a batch, every MTurk call answered by botocore's Stubber with
its parameters checked: publishing (qualification type, HIT type, one HIT per unit; a second run
creates nothing; a failure half-way and the run that finishes), syncing (states recorded from
MTurk, answers MTurk has and we do not reported, decisions delivered once, failures retried),
qualification scores, and notifications."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber
from django.core.exceptions import ValidationError
from pytest_django import Settings

from crowd import services
from crowd.models import (
    CrowdAssignment,
    CrowdBatch,
    CrowdHit,
    CrowdWorker,
    GoldItem,
    QualificationAttempt,
    ReviewAction,
)
from crowd.mturk import SANDBOX_ENDPOINT, MTurkClient, MTurkError
from crowd.mturk_ops import (
    batch_unit_count,
    grant_qualification,
    notify_batch_workers,
    publish_batch,
    score_percent,
    sync_batch,
)
from tests.conftest import World
from tests.crowd.helpers import crowd_setup
from tests.crowd.mturk_stubs import (
    DUPLICATE_MESSAGE,
    EXPIRES,
    HIT_TYPE_ID,
    QUAL_ID,
    answered,
    decision,
    expect_hit,
    expect_hit_type,
    expect_listing,
    expect_qualification_type,
    hit_params,
    hit_row,
    mturk_assignment,
    mturk_crowd,
    stubbed_client,
)

Kind = ReviewAction.Kind
Delivery = ReviewAction.Delivery
State = CrowdAssignment.State


@pytest.fixture
def mturk(settings: Settings) -> Iterator[tuple[MTurkClient, Stubber]]:
    with stubbed_client(settings) as pair:
        yield pair


# --- publishing -------------------------------------------------------------------------------


def test_it_publishes_a_qualification_type_a_hit_type_and_one_hit_per_unit(
    world: World, mturk: tuple[MTurkClient, Stubber]
) -> None:
    client, stub = mturk
    crowd = mturk_crowd(world.demo)
    batch = crowd.batch
    expect_qualification_type(stub, batch)
    expect_hit_type(stub)
    for index in range(3):
        expect_hit(stub, batch, index)
    seen: list[str] = []
    progress = lambda done, total, message: seen.append(f"{done}/{total} {message}")  # noqa: E731

    report = publish_batch(batch, client, progress=progress)

    assert report.as_dict() == {
        "hit_type_id": HIT_TYPE_ID,
        "qualification_type_id": QUAL_ID,
        "created": 3,
        "hits": 3,
        "units": 3,
    }
    hits = list(CrowdHit.objects.filter(batch=batch).order_by("pk"))
    assert [(h.hit_id, h.max_assignments, h.expires_at) for h in hits] == [(f"HIT{n}", 3, EXPIRES) for n in range(3)]
    batch.refresh_from_db()
    crowd.test.refresh_from_db()
    assert batch.hit_type_id == HIT_TYPE_ID and crowd.test.mturk_qualification_type_id == QUAL_ID
    assert seen == ["1/3 HIT 1 of 3 created", "2/3 HIT 2 of 3 created", "3/3 HIT 3 of 3 created"]

    # Everything is published: a second run asks MTurk nothing (an unexpected call would fail).
    again = publish_batch(batch, client)
    assert (again.created, again.hits) == (0, 3)
    assert CrowdHit.objects.filter(batch=batch).count() == 3


def test_it_publishes_the_missing_hits_after_a_failure_half_way(
    world: World, mturk: tuple[MTurkClient, Stubber]
) -> None:
    client, stub = mturk
    batch = mturk_crowd(world.demo).batch
    expect_qualification_type(stub, batch)
    expect_hit_type(stub)
    expect_hit(stub, batch, 0)
    stub.add_client_error(
        "create_hit_with_hit_type",
        service_error_code="ServiceFault",
        service_message="We are experiencing technical difficulties.",
        http_status_code=500,
        expected_params=hit_params(batch, 1),
    )
    with pytest.raises(MTurkError, match="ServiceFault: We are experiencing technical difficulties"):
        publish_batch(batch, client)
    assert list(CrowdHit.objects.filter(batch=batch).values_list("hit_id", flat=True)) == ["HIT0"]

    # The rerun: the qualification type is kept, HITs 1 and 2 are made with their own tokens.
    expect_hit_type(stub)
    expect_hit(stub, batch, 1)
    expect_hit(stub, batch, 2)
    report = publish_batch(batch, client)
    assert (report.created, report.hits) == (2, 3)
    assert list(CrowdHit.objects.filter(batch=batch).order_by("pk").values_list("hit_id", flat=True)) == [
        "HIT0",
        "HIT1",
        "HIT2",
    ]


def test_it_explains_a_hit_mturk_made_for_a_run_whose_answer_was_lost(
    world: World, mturk: tuple[MTurkClient, Stubber]
) -> None:
    client, stub = mturk
    batch = mturk_crowd(world.demo, with_test=False).batch
    expect_hit_type(stub, with_test=False)
    token = hit_params(batch, 0)["UniqueRequestToken"]
    stub.add_client_error(
        "create_hit_with_hit_type",
        service_error_code="RequestError",
        service_message=DUPLICATE_MESSAGE.format(token=token),
        http_status_code=400,
        expected_params=hit_params(batch, 0),
    )
    with pytest.raises(MTurkError, match=f"MTurk created HIT 1 of this batch .*{token}"):
        publish_batch(batch, client)
    assert not CrowdHit.objects.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"site": "http://annotate.example.org"}, "frames only https pages"),
        ({"reward_cents": 0}, "Set the batch's reward"),
        ({"provider": "link"}, "Only Mechanical Turk batches"),
        ({"state": "closed"}, "The batch is closed"),
    ],
)
def test_it_refuses_a_batch_it_cannot_publish_before_calling_mturk(
    world: World, mturk: tuple[MTurkClient, Stubber], settings: Settings, change: dict[str, Any], message: str
) -> None:
    client, _ = mturk
    batch = mturk_crowd(world.demo).batch
    if "site" in change:
        settings.SITE_URL = change.pop("site")
    for name, value in change.items():
        setattr(batch, name, value)
    batch.save()
    with pytest.raises(ValidationError, match=message):
        publish_batch(batch, client)
    assert not CrowdHit.objects.exists()
    assert batch.project.qualification_test.mturk_qualification_type_id == ""


def test_it_counts_objects_as_units_of_an_object_question(world: World) -> None:
    # The world's question is about each object of its label: one object, so one unit.
    batch = mturk_crowd(world.demo).batch
    batch.question = world.demo.question
    batch.save(update_fields=["question"])
    assert batch_unit_count(batch) == 1
    GoldItem.objects.create(
        project=world.demo.project,
        media=world.demo.media,
        annotation=world.demo.annotation,
        question=world.demo.question,
        answer="good",
    )
    assert batch_unit_count(batch) == 0


# --- syncing: states --------------------------------------------------------------------------


def test_it_records_what_mturk_decided_and_reports_what_it_cannot_match(
    world: World, mturk: tuple[MTurkClient, Stubber]
) -> None:
    client, stub = mturk
    crowd = mturk_crowd(world.demo)
    batch = crowd.batch
    first, second = hit_row(batch, "HIT0"), hit_row(batch, "HIT1")
    approved_at = datetime(2026, 5, 4, 13, 0, tzinfo=UTC)
    auto = answered(crowd, "A-auto")
    rejected = answered(crowd, "A-rejected", item=1)
    waiting = answered(crowd, "A-waiting", item=2)
    unanswered = answered(crowd, "A-open", state=State.ASSIGNED)
    listings = [
        [
            mturk_assignment("A-auto", "Approved", ApprovalTime=approved_at),
            mturk_assignment("A-rejected", "Rejected", RequesterFeedback="Wrong part.", RejectionTime=approved_at),
        ],
        [mturk_assignment("A-waiting", "Submitted"), mturk_assignment("A-open", "Submitted")],
    ]
    expect_listing(stub, "HIT0", listings[0])
    # The second HIT's assignments come in two pages.
    expect_listing(stub, "HIT1", listings[1], [mturk_assignment("A-stranger", "Submitted", hit_id="HIT1")])

    report = sync_batch(batch, client)

    for row in (auto, rejected, waiting, unanswered):
        row.refresh_from_db()
    assert (auto.state, auto.reviewed_at, auto.review_reason) == (State.APPROVED, approved_at, "")
    assert (rejected.state, rejected.review_reason) == (State.REJECTED, "Wrong part.")
    assert (waiting.state, unanswered.state) == (State.SUBMITTED, State.ASSIGNED)
    audit = {a.assignment_id: a for a in ReviewAction.objects.all()}
    assert set(audit) == {auto.pk, rejected.pk}
    assert (audit[auto.pk].kind, audit[auto.pk].actor, audit[auto.pk].delivery) == (Kind.APPROVE, None, Delivery.NONE)
    assert audit[auto.pk].reason.startswith("Approved on Mechanical Turk")
    assert (audit[rejected.pk].kind, audit[rejected.pk].reason) == (Kind.REJECT, "Wrong part.")
    assert report.recorded == [
        {"assignment_id": "A-auto", "from": "submitted", "to": "approved"},
        {"assignment_id": "A-rejected", "from": "submitted", "to": "rejected"},
    ]
    # MTurk's assignment with no answer here is reported, and no row is made up for it.
    assert [(r["assignment_id"], r["mturk_status"]) for r in report.unmatched] == [("A-stranger", "Submitted")]
    assert not CrowdAssignment.objects.filter(assignment_id="A-stranger").exists()
    assert [r["assignment_id"] for r in report.conflicts] == ["A-open"]
    assert (report.hits, report.assignments) == (2, 5)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.synced_at is not None and second.synced_at is not None

    # The same answers again: nothing more is recorded.
    expect_listing(stub, "HIT0", listings[0])
    expect_listing(stub, "HIT1", listings[1])
    assert sync_batch(batch, client).recorded == []
    assert ReviewAction.objects.count() == 2


def test_it_reports_a_hit_it_could_not_list_and_syncs_the_others(
    world: World, mturk: tuple[MTurkClient, Stubber]
) -> None:
    client, stub = mturk
    crowd = mturk_crowd(world.demo)
    hit_row(crowd.batch, "HIT0")
    hit_row(crowd.batch, "HIT1")
    row = answered(crowd, "A1")
    stub.add_client_error("list_assignments_for_hit", "ServiceFault", "Try again.", http_status_code=500)
    expect_listing(stub, "HIT1", [mturk_assignment("A1", "Approved", hit_id="HIT1")])
    report = sync_batch(crowd.batch, client)
    assert [e["hit_id"] for e in report.errors] == ["HIT0"]
    assert "ServiceFault: Try again." in report.errors[0]["error"] and "Try again." in report.summary()
    row.refresh_from_db()
    assert row.state == State.APPROVED
    assert CrowdHit.objects.get(hit_id="HIT0").synced_at is None


# --- syncing: decisions -----------------------------------------------------------------------


def test_it_delivers_approvals_rejections_and_bonuses_once(world: World, mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    crowd = mturk_crowd(world.demo)
    hit_row(crowd.batch)
    good = answered(crowd, "A-good", state=State.APPROVED)
    bad = answered(crowd, "A-bad", item=1, state=State.REJECTED)
    approve = decision(good, Kind.APPROVE, "Careful work.")
    reject = decision(bad, Kind.REJECT, "Two gold items answered wrongly.")
    bonus = decision(good, Kind.BONUS, "All gold items right.", amount_cents=50)
    # Another organisation's decision on its own MTurk batch is not this batch's to send.
    other = mturk_crowd(world.other)
    foreign = decision(answered(other, "A-foreign", state=State.APPROVED), Kind.APPROVE, "")
    listed = [mturk_assignment("A-good", "Submitted"), mturk_assignment("A-bad", "Submitted")]
    expect_listing(stub, "HIT0", listed)
    stub.add_response("approve_assignment", {}, {"AssignmentId": "A-good", "RequesterFeedback": "Careful work."})
    stub.add_response(
        "reject_assignment", {}, {"AssignmentId": "A-bad", "RequesterFeedback": "Two gold items answered wrongly."}
    )
    stub.add_response(
        "send_bonus",
        {},
        {
            "WorkerId": "W-A-good",
            "BonusAmount": "0.50",
            "AssignmentId": "A-good",
            "Reason": "All gold items right.",
            "UniqueRequestToken": f"bonus-{bonus.pk}",
        },
    )

    report = sync_batch(crowd.batch, client)

    assert [(r["action"], r["result"]) for r in report.delivered] == [
        (approve.pk, "approved"),
        (reject.pk, "rejected"),
        (bonus.pk, "paid"),
    ]
    for action in (approve, reject, bonus):
        action.refresh_from_db()
        assert (action.delivery, action.delivery_error) == (Delivery.SENT, "")
        assert action.delivered_at is not None
    foreign.refresh_from_db()
    assert foreign.delivery == Delivery.PENDING

    # Sent decisions are not sent again.
    expect_listing(stub, "HIT0", listed)
    assert sync_batch(crowd.batch, client).delivered == []


def test_it_counts_a_bonus_mturk_had_already_paid_as_sent(world: World, mturk: tuple[MTurkClient, Stubber]) -> None:
    # An earlier sync paid the bonus and stopped before recording it: MTurk refuses the token again.
    client, stub = mturk
    crowd = mturk_crowd(world.demo)
    hit_row(crowd.batch)
    bonus = decision(answered(crowd, "A1"), Kind.BONUS, "Thanks.", amount_cents=25)
    token = f"bonus-{bonus.pk}"
    expect_listing(stub, "HIT0", [mturk_assignment("A1", "Submitted")])
    stub.add_client_error(
        "send_bonus",
        service_error_code="RequestError",
        service_message=DUPLICATE_MESSAGE.format(token=token),
        http_status_code=400,
        expected_params={
            "WorkerId": "W-A1",
            "BonusAmount": "0.25",
            "AssignmentId": "A1",
            "Reason": "Thanks.",
            "UniqueRequestToken": token,
        },
    )
    report = sync_batch(crowd.batch, client)
    bonus.refresh_from_db()
    assert (bonus.delivery, bonus.delivery_error) == (Delivery.SENT, "")
    assert report.failed == [] and [r["result"] for r in report.delivered] == ["paid by an earlier try"]
    assert ReviewAction.objects.filter(kind=Kind.BONUS).count() == 1


def test_it_pays_a_bonus_whose_answer_was_lost_once(world: World, mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    crowd = mturk_crowd(world.demo)  # no HITs recorded: the syncs only send decisions
    bonus = decision(answered(crowd, "A1"), Kind.BONUS, "Thanks.", amount_cents=25)
    tokens: list[str] = []
    client.client.meta.events.register(
        "provide-client-params.mturk.SendBonus", lambda params, **kw: tokens.append(params["UniqueRequestToken"])
    )
    lost: list[bool] = []

    def lose_first_answer(model: Any, **kwargs: Any) -> None:
        # MTurk pays, but its answer never arrives: the caller sees a timeout. (Raised ahead of
        # the Stubber's answer, registered on the same event, which stays queued for the next call.)
        if model.name == "SendBonus" and not lost:
            lost.append(True)
            raise ReadTimeoutError(endpoint_url=SANDBOX_ENDPOINT)

    client.client.meta.events.register_first("before-call.*.*", lose_first_answer)
    # What MTurk answers the retry: it already carried out this token.
    stub.add_client_error(
        "send_bonus",
        service_error_code="RequestError",
        service_message=DUPLICATE_MESSAGE.format(token=f"bonus-{bonus.pk}"),
        http_status_code=400,
    )
    first = sync_batch(crowd.batch, client)
    bonus.refresh_from_db()
    assert bonus.delivery == Delivery.FAILED and "ReadTimeoutError" in bonus.delivery_error
    assert bonus.delivered_at is None and [r["action"] for r in first.failed] == [bonus.pk]

    second = sync_batch(crowd.batch, client)
    bonus.refresh_from_db()
    assert (bonus.delivery, bonus.delivery_error) == (Delivery.SENT, "")
    assert [r["result"] for r in second.delivered] == ["paid by an earlier try"]
    assert tokens == [f"bonus-{bonus.pk}"] * 2


def test_it_records_a_service_fault_and_tries_again_next_sync(world: World, mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    crowd = mturk_crowd(world.demo)
    hit_row(crowd.batch)
    approve = decision(answered(crowd, "A1", state=State.APPROVED), Kind.APPROVE, "")
    expect_listing(stub, "HIT0", [mturk_assignment("A1", "Submitted")])
    stub.add_client_error(
        "approve_assignment",
        service_error_code="ServiceFault",
        service_message="We are experiencing technical difficulties.",
        http_status_code=500,
        expected_params={"AssignmentId": "A1"},
    )
    sync_batch(crowd.batch, client)
    approve.refresh_from_db()
    assert approve.delivery == Delivery.FAILED
    assert approve.delivery_error == (
        "MTurk approve_assignment failed: ServiceFault: We are experiencing technical difficulties."
    )

    expect_listing(stub, "HIT0", [mturk_assignment("A1", "Submitted")])
    stub.add_response("approve_assignment", {}, {"AssignmentId": "A1"})
    sync_batch(crowd.batch, client)
    approve.refresh_from_db()
    assert (approve.delivery, approve.delivery_error) == (Delivery.SENT, "")


def test_it_does_not_ask_mturk_what_it_already_decided(world: World, mturk: tuple[MTurkClient, Stubber]) -> None:
    # MTurk approved both on its own (automatic approval) before the decisions went out.
    client, stub = mturk
    crowd = mturk_crowd(world.demo)
    hit_row(crowd.batch)
    approve = decision(answered(crowd, "A-yes", state=State.APPROVED), Kind.APPROVE, "Fine.")
    reject = decision(answered(crowd, "A-no", item=1, state=State.REJECTED), Kind.REJECT, "Wrong.")
    expect_listing(stub, "HIT0", [mturk_assignment("A-yes", "Approved"), mturk_assignment("A-no", "Approved")])
    report = sync_batch(crowd.batch, client)
    approve.refresh_from_db()
    reject.refresh_from_db()
    assert approve.delivery == Delivery.SENT
    assert reject.delivery == Delivery.FAILED and "already approved" in reject.delivery_error
    assert [r["assignment_id"] for r in report.conflicts] == ["A-no"]


def test_it_sends_a_bonus_given_to_a_worker_with_their_latest_answer(
    world: World, mturk: tuple[MTurkClient, Stubber]
) -> None:
    client, stub = mturk
    crowd = mturk_crowd(world.demo)
    hit_row(crowd.batch)
    answered(crowd, "A-old", worker_id="W7")
    latest = answered(crowd, "A-new", item=1, worker_id="W7")
    CrowdAssignment.objects.filter(pk=latest.pk).update(submitted_at=datetime(2026, 5, 2, tzinfo=UTC))
    bonus = ReviewAction.objects.create(
        organization=world.demo.org,
        kind=Kind.BONUS,
        worker=latest.worker,
        reason="A good week.",
        amount_cents=100,
        delivery=Delivery.PENDING,
    )
    expect_listing(stub, "HIT0")
    stub.add_response(
        "send_bonus",
        {},
        {
            "WorkerId": "W7",
            "BonusAmount": "1.00",
            "AssignmentId": "A-new",
            "Reason": "A good week.",
            "UniqueRequestToken": f"bonus-{bonus.pk}",
        },
    )
    sync_batch(crowd.batch, client)
    bonus.refresh_from_db()
    assert bonus.delivery == Delivery.SENT


# --- qualification scores ---------------------------------------------------------------------


def finished_attempt(crowd: Any, worker_id: str, answers: list[str], *, assignment_id: str = "A1") -> Any:
    worker = services.worker_enter(batch=crowd.batch, external_id=worker_id)
    context = {"assignment_id": assignment_id, "hit_id": "HIT0", "turk_submit_to": "https://workersandbox.mturk.com"}
    qualification = services.qualification_begin(worker=worker, batch=crowd.batch, context=context)
    return services.qualification_submit(attempt=qualification.attempt, answers=answers)


def expect_score(stub: Stubber, worker_id: str, score: int) -> None:
    stub.add_response(
        "associate_qualification_with_worker",
        {},
        {"QualificationTypeId": QUAL_ID, "WorkerId": worker_id, "IntegerValue": score, "SendNotification": False},
    )


def test_it_grants_the_score_in_percent_passed_or_failed(world: World, mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    crowd = mturk_crowd(world.demo)
    passed = finished_attempt(crowd, "W-pass", ["one", "one"])
    failed = finished_attempt(crowd, "W-fail", ["one", "many"], assignment_id="A2")
    # The first grant creates the project's qualification type; the second finds it stored.
    expect_qualification_type(stub, crowd.batch)
    expect_score(stub, "W-pass", 100)
    expect_score(stub, "W-fail", 50)
    assert grant_qualification(passed, client) == {
        "worker_id": "W-pass",
        "qualification_type_id": QUAL_ID,
        "score": 100,
        "passed": True,
    }
    assert grant_qualification(failed, client)["score"] == 50
    assert [score_percent(s) for s in (0, 2 / 3, 0.8, 1)] == [0, 67, 80, 100]


def test_it_grants_nothing_for_other_workers_or_replaced_attempts(
    world: World, mturk: tuple[MTurkClient, Stubber]
) -> None:
    client, _ = mturk  # no call is queued: any call fails the test
    link = crowd_setup(world.other, provider="link")
    link_worker = services.worker_enter(batch=link.batch, external_id="prolific-1")
    link_attempt = services.qualification_begin(
        worker=link_worker, batch=link.batch, context={"session_id": "s"}
    ).attempt
    link_attempt = services.qualification_submit(attempt=link_attempt, answers=["one", "one"])
    assert "skipped" in grant_qualification(link_attempt, client)

    crowd = mturk_crowd(world.demo)
    old = finished_attempt(crowd, "W1", ["many", "many"])
    QualificationAttempt.objects.filter(pk=old.pk).update(finished_at=datetime(2026, 1, 1, tzinfo=UTC))
    QualificationAttempt.objects.create(
        worker=old.worker,
        test=old.test,
        batch=crowd.batch,
        items=old.items,
        context=old.context,
        score=1.0,
        passed=True,
        finished_at=datetime(2026, 1, 3, tzinfo=UTC),
    )
    old.refresh_from_db()
    assert grant_qualification(old, client) == {"skipped": "A later attempt of the same worker replaced this one."}

    worker = CrowdWorker.objects.get(external_id="W1")
    unfinished = QualificationAttempt.objects.create(
        worker=worker, test=old.test, batch=crowd.batch, items=old.items, context=old.context
    )
    with pytest.raises(ValidationError, match="not been submitted"):
        grant_qualification(unfinished, client)


# --- notifications ----------------------------------------------------------------------------


def test_it_notifies_the_batch_workers_who_are_not_blocked(world: World, mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    crowd = mturk_crowd(world.demo)
    answered(crowd, "A1", worker_id="W-b")
    answered(crowd, "A2", item=1, worker_id="W-a")
    blocked = answered(crowd, "A3", item=2, worker_id="W-blocked").worker
    blocked.blocked = True
    blocked.save(update_fields=["blocked"])
    answered(mturk_crowd(world.other), "A-other", worker_id="W-other")
    failure = {
        "NotifyWorkersFailureCode": "SoftFailure",
        "NotifyWorkersFailureMessage": "Try later.",
        "WorkerId": "W-b",
    }
    stub.add_response(
        "notify_workers",
        {"NotifyWorkersFailureStatuses": [failure]},
        {"Subject": "New HITs", "MessageText": "More parts to look at.", "WorkerIds": ["W-a", "W-b"]},
    )
    assert notify_batch_workers(crowd.batch, " New HITs ", "More parts to look at.", client) == [failure]
    with pytest.raises(ValidationError, match="subject"):
        notify_batch_workers(crowd.batch, "  ", "text", client)
    with pytest.raises(ValidationError, match="message"):
        notify_batch_workers(crowd.batch, "Hello", "x" * 4097, client)
    # A batch nobody worked on: nothing to send.
    idle = CrowdBatch.objects.create(project=world.demo.project, name="Idle", provider="mturk", question=crowd.question)
    assert notify_batch_workers(idle, "Hi", "Hello.", client) == []
