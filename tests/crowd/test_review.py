"""The reviewer's decisions as services: approving and rejecting crowd answers and members' tasks,
bonuses, blocks, settling results; each audited once per request key, refused below the reviewer
role, and a 404 for another organisation's objects."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, connections
from django.http import Http404

from annotation.models import Task
from crowd import review
from crowd.models import CrowdAssignment, CrowdResult, ReviewAction
from crowd.results import batch_aggregate
from platform_core.models import Membership
from platform_core.tenancy import Tenant
from tests.crowd.helpers import crowd_setup
from tests.crowd.review_world import answer, worker


def tenant_of(user: Any, side: Any) -> Tenant:
    membership = Membership.objects.select_related("organization").get(user=user, organization=side.org)
    return Tenant(org=membership.organization, membership=membership)


def key() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def submitted(world: Any) -> Any:
    """A submitted answer on a study-link batch of Demo Lab, and the reviewer's tenant."""
    crowd = crowd_setup(world.demo, regular=2, hidden=0, qualification=0, with_test=False)
    crowd.assignment = answer(crowd.batch, worker(world.demo, "pid-1"), crowd.regular[0], "one")
    crowd.tenant = tenant_of(world.reviewer, world.demo)
    return crowd


def review_it(crowd: Any, **kwargs: Any) -> ReviewAction:
    params = {"approve": True, "reason": "", "request_key": key(), "actor": crowd.tenant.membership.user}
    params.update(kwargs)
    return review.assignment_review(tenant=crowd.tenant, assignment=crowd.assignment, **params)


# --- approve / reject -------------------------------------------------------------------------
def test_it_approves_an_answer_and_records_who_did(submitted: Any, world: Any) -> None:
    action = review_it(submitted, reason="Nice work")
    submitted.assignment.refresh_from_db()
    assert submitted.assignment.state == CrowdAssignment.State.APPROVED
    assert submitted.assignment.reviewed_by == world.reviewer and submitted.assignment.reviewed_at is not None
    assert submitted.assignment.review_reason == "Nice work"
    assert (action.kind, action.actor, action.assignment, action.worker) == (
        "approve",
        world.reviewer,
        submitted.assignment,
        submitted.assignment.worker,
    )
    assert action.organization == world.demo.org and action.delivery == "none"  # a study link: nothing to send


def test_it_rejects_only_with_a_reason(submitted: Any) -> None:
    with pytest.raises(ValidationError, match="needs a reason"):
        review_it(submitted, approve=False, reason="   ")
    submitted.assignment.refresh_from_db()
    assert submitted.assignment.state == CrowdAssignment.State.SUBMITTED
    assert not ReviewAction.objects.exists()

    action = review_it(submitted, approve=False, reason="The part is clearly one instance.")
    submitted.assignment.refresh_from_db()
    assert submitted.assignment.state == CrowdAssignment.State.REJECTED
    assert submitted.assignment.review_reason == action.reason == "The part is clearly one instance."


def test_it_reviews_an_answer_once(submitted: Any) -> None:
    review_it(submitted)
    with pytest.raises(ValidationError, match="already approved"):
        review_it(submitted, approve=False, reason="Changed my mind")
    assert ReviewAction.objects.count() == 1


def test_it_takes_the_same_request_key_twice_as_one_decision(submitted: Any) -> None:
    same = key()
    first = review_it(submitted, request_key=same)
    second = review_it(submitted, request_key=same)  # would be refused as already approved otherwise
    assert first.pk == second.pk and ReviewAction.objects.count() == 1


def test_it_refuses_a_request_key_used_for_another_decision(submitted: Any, world: Any) -> None:
    same = key()
    review_it(submitted, request_key=same)
    other = answer(submitted.batch, worker(world.demo, "pid-2"), submitted.regular[1], "many")
    with pytest.raises(ValidationError, match="already been used"):
        review.assignment_review(
            tenant=submitted.tenant, assignment=other, approve=True, reason="", actor=world.reviewer, request_key=same
        )
    other.refresh_from_db()
    assert other.state == CrowdAssignment.State.SUBMITTED


def test_it_needs_a_request_key(submitted: Any) -> None:
    with pytest.raises(ValidationError, match="request key"):
        review_it(submitted, request_key="")
    assert not ReviewAction.objects.exists()


def test_it_leaves_mechanical_turk_decisions_for_the_sync_job(world: Any) -> None:
    crowd = crowd_setup(world.demo, provider="mturk", regular=1, hidden=0, qualification=0, with_test=False)
    assignment = answer(crowd.batch, worker(world.demo, "W1", provider="mturk"), crowd.regular[0], "one")
    tenant = tenant_of(world.manager, world.demo)
    rejected = review.assignment_review(
        tenant=tenant, assignment=assignment, approve=False, reason="Wrong", actor=world.manager, request_key=key()
    )
    bonus = review.bonus_pay(
        tenant=tenant, assignment=assignment, amount_cents=25, reason="Careful", actor=world.manager, request_key=key()
    )
    assert (rejected.delivery, bonus.delivery) == ("pending", "pending")


@pytest.mark.parametrize("who", ["annotator"])
def test_it_refuses_members_below_reviewer(submitted: Any, world: Any, who: str) -> None:
    tenant = tenant_of(getattr(world, who), world.demo)
    calls = [
        lambda: review.assignment_review(
            tenant=tenant, assignment=submitted.assignment, approve=True, reason="", actor=None, request_key=key()
        ),
        lambda: review.bonus_pay(
            tenant=tenant, assignment=submitted.assignment, amount_cents=5, reason="x", actor=None, request_key=key()
        ),
        lambda: review.worker_block(
            tenant=tenant, worker=submitted.assignment.worker, reason="x", actor=None, request_key=key()
        ),
        lambda: review.task_review_with_reason(
            tenant=tenant, task=world.demo.task, accept=True, reason="", actor=None, request_key=key()
        ),
    ]
    for call in calls:
        with pytest.raises(PermissionDenied):
            call()
    submitted.assignment.refresh_from_db()
    assert submitted.assignment.state == CrowdAssignment.State.SUBMITTED
    assert not ReviewAction.objects.exists()


def test_it_answers_404_for_another_organisations_objects(world: Any) -> None:
    theirs = crowd_setup(world.other, regular=1, hidden=0, qualification=0, with_test=False)
    assignment = answer(theirs.batch, worker(world.other, "pid-x"), theirs.regular[0], "one")
    tenant = tenant_of(world.owner, world.demo)
    calls = [
        lambda: review.assignment_review(
            tenant=tenant, assignment=assignment, approve=True, reason="", actor=world.owner, request_key=key()
        ),
        lambda: review.bonus_pay(
            tenant=tenant, worker=assignment.worker, amount_cents=5, reason="x", actor=world.owner, request_key=key()
        ),
        lambda: review.worker_block(
            tenant=tenant, worker=assignment.worker, reason="x", actor=world.owner, request_key=key()
        ),
        lambda: review.task_review_with_reason(
            tenant=tenant, task=world.other.task, accept=True, reason="", actor=world.owner, request_key=key()
        ),
    ]
    for call in calls:
        with pytest.raises(Http404):
            call()
    assignment.refresh_from_db()
    assert assignment.state == CrowdAssignment.State.SUBMITTED and not ReviewAction.objects.exists()


# --- bonuses ----------------------------------------------------------------------------------
def test_it_pays_a_retried_bonus_once(submitted: Any) -> None:
    same = key()
    for _ in range(2):
        review.bonus_pay(
            tenant=submitted.tenant,
            assignment=submitted.assignment,
            amount_cents=50,
            reason="Thorough work",
            actor=None,
            request_key=same,
        )
    bonus = ReviewAction.objects.get()
    assert (bonus.kind, bonus.amount_cents, bonus.worker) == ("bonus", 50, submitted.assignment.worker)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("decision", ["bonus", "approve"])
def test_it_takes_one_key_posted_twice_at_once_as_one_decision(submitted: Any, decision: str) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's row locks between two connections (the PostgreSQL pass runs it)")
    same, start = key(), threading.Barrier(2)

    def post(_: int) -> int:
        try:
            start.wait()
            if decision == "bonus":
                action = review.bonus_pay(
                    tenant=submitted.tenant,
                    assignment=submitted.assignment,
                    amount_cents=50,
                    reason="Thorough work",
                    actor=None,
                    request_key=same,
                )
            else:
                action = review_it(submitted, request_key=same)
            return action.pk
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(post, range(2))
    assert first == second
    assert ReviewAction.objects.filter(kind=decision).count() == 1


@pytest.mark.parametrize("amount", [0, -5, 100_01, True, "50"])
def test_it_refuses_a_bonus_out_of_bounds(submitted: Any, amount: Any) -> None:
    with pytest.raises(ValidationError):
        review.bonus_pay(
            tenant=submitted.tenant,
            assignment=submitted.assignment,
            amount_cents=amount,
            reason="x",
            actor=None,
            request_key=key(),
        )
    assert not ReviewAction.objects.exists()


def test_it_wants_a_reason_and_a_submitted_answer_for_a_bonus(submitted: Any, world: Any) -> None:
    with pytest.raises(ValidationError, match="reason"):
        review.bonus_pay(
            tenant=submitted.tenant,
            assignment=submitted.assignment,
            amount_cents=5,
            reason="",
            actor=None,
            request_key=key(),
        )
    open_one = answer(submitted.batch, worker(world.demo, "pid-2"), submitted.regular[1], state="assigned")
    with pytest.raises(ValidationError, match="submitted"):
        review.bonus_pay(
            tenant=submitted.tenant, assignment=open_one, amount_cents=5, reason="x", actor=None, request_key=key()
        )
    assert not ReviewAction.objects.exists()


def test_it_pays_a_study_link_worker_without_an_answer_but_not_an_mturk_one(submitted: Any, world: Any) -> None:
    linked = submitted.assignment.worker
    action = review.bonus_pay(
        tenant=submitted.tenant, worker=linked, amount_cents=100, reason="Thanks", actor=None, request_key=key()
    )
    assert action.assignment is None and action.worker == linked and action.delivery == "none"
    turk = worker(world.demo, "W9", provider="mturk")
    with pytest.raises(ValidationError, match="choose the answer"):
        review.bonus_pay(
            tenant=submitted.tenant, worker=turk, amount_cents=100, reason="Thanks", actor=None, request_key=key()
        )


# --- blocks -----------------------------------------------------------------------------------
def test_it_blocks_with_a_reason_and_unblocks(submitted: Any, world: Any) -> None:
    person = submitted.assignment.worker
    with pytest.raises(ValidationError, match="reason"):
        review.worker_block(tenant=submitted.tenant, worker=person, reason="", actor=world.reviewer, request_key=key())
    review.worker_block(
        tenant=submitted.tenant, worker=person, reason="Random answers", actor=world.reviewer, request_key=key()
    )
    person.refresh_from_db()
    assert person.blocked and person.block_reason == "Random answers"
    with pytest.raises(ValidationError, match="already blocked"):
        review.worker_block(tenant=submitted.tenant, worker=person, reason="Again", actor=None, request_key=key())

    review.worker_unblock(tenant=submitted.tenant, worker=person, reason="", actor=world.reviewer, request_key=key())
    person.refresh_from_db()
    assert not person.blocked and person.block_reason == ""
    assert list(ReviewAction.objects.order_by("id").values_list("kind", flat=True)) == ["block", "unblock"]


# --- members' tasks ---------------------------------------------------------------------------
def test_it_rejects_a_task_with_the_reason_its_annotator_reads(world: Any) -> None:
    task = world.demo.task
    Task.objects.filter(pk=task.pk).update(state=Task.State.SUBMITTED)
    tenant = tenant_of(world.reviewer, world.demo)
    with pytest.raises(ValidationError, match="reason"):
        review.task_review_with_reason(
            tenant=tenant, task=task, accept=False, reason="", actor=world.reviewer, request_key=key()
        )
    same = key()
    for _ in range(2):
        action = review.task_review_with_reason(
            tenant=tenant,
            task=task,
            accept=False,
            reason="Masks miss the handles.",
            actor=world.reviewer,
            request_key=same,
        )
    task.refresh_from_db()
    assert task.state == Task.State.REJECTED and task.review_note == "Masks miss the handles."
    assert ReviewAction.objects.get() == action and (action.kind, action.task) == ("reject", task)

    Task.objects.filter(pk=task.pk).update(state=Task.State.SUBMITTED)
    review.task_review_with_reason(tenant=tenant, task=task, accept=True, reason="", actor=None, request_key=key())
    task.refresh_from_db()
    assert task.state == Task.State.ACCEPTED and task.review_note == ""


def test_it_reviews_only_a_submitted_task(world: Any) -> None:
    tenant = tenant_of(world.reviewer, world.demo)
    with pytest.raises(ValidationError, match="Only a submitted task"):
        review.task_review_with_reason(
            tenant=tenant, task=world.demo.task, accept=True, reason="", actor=None, request_key=key()
        )
    assert not ReviewAction.objects.exists()


# --- results ----------------------------------------------------------------------------------
def test_it_settles_a_result_and_writes_the_answer(submitted: Any, world: Any) -> None:
    batch_aggregate(submitted.batch)  # one answer: the unit waits for review
    result = CrowdResult.objects.get(batch=submitted.batch)
    assert result.needs_review
    item = result.media
    with pytest.raises(ValidationError, match="one of the question"):
        review.result_review(tenant=submitted.tenant, result=result, answer="maybe", actor=world.reviewer)

    settled = review.result_review(tenant=submitted.tenant, result=result, answer="many", actor=world.reviewer)

    assert (settled.answer, settled.reviewed_by) == ("many", world.reviewer) and settled.reviewed_at is not None
    item.refresh_from_db()
    assert item.answers == {str(submitted.question.pk): "many"}
    other = tenant_of(world.outsider, world.other)
    with pytest.raises(Http404):
        review.result_review(tenant=other, result=result, answer="one", actor=world.outsider)
