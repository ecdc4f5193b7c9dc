"""The Mechanical Turk jobs through the real Tasks API (queued after commit, run as ``db_worker``
runs them) with the requester client answered by botocore's Stubber: publishing, syncing and
granting a score; MTurk's error as the job's reason and a retry that carries on; who may start
them; a job naming another organisation's row; and ``manage.py crowd_sync`` for cron."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.stub import Stubber
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from django.http import Http404
from django_tasks_db.models import DBTaskResult
from pytest_django import Settings

from crowd import mturk_jobs, services
from crowd.models import CrowdAssignment, CrowdHit, ReviewAction
from crowd.mturk import MTurkClient
from crowd.mturk_jobs import (
    GRANT,
    PUBLISH,
    SYNC,
    enqueue_qualification_score,
    mturk_publish_start,
    mturk_sync_start,
)
from platform_core.jobs import job_start
from platform_core.jobs.core import run_job
from platform_core.jobs.services import job_retry
from platform_core.models import Job, Membership, Role
from platform_core.tenancy import resolve_tenant
from tests.conftest import World
from tests.crowd.helpers import crowd_setup
from tests.crowd.mturk_stubs import (
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

State = CrowdAssignment.State


@pytest.fixture
def mturk(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MTurkClient, Stubber]]:
    """The jobs' and the command's requester client, its calls answered by the Stubber."""
    with stubbed_client(settings) as (client, stub):
        monkeypatch.setattr(mturk_jobs, "client_factory", lambda: client)
        yield client, stub


def run(job: Job) -> Job:
    run_job.call(job.pk)
    job.refresh_from_db()
    return job


def started(capture: Any, start: Any, **kwargs: Any) -> Job:
    with capture(execute=True):
        job = start(**kwargs)
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED and DBTaskResult.objects.filter(id=job.task_result_id).exists()
    return job


# --- publishing -------------------------------------------------------------------------------


def test_it_publishes_a_batch_as_a_job(
    world: World, mturk: tuple[MTurkClient, Stubber], django_capture_on_commit_callbacks: Any
) -> None:
    _, stub = mturk
    batch = mturk_crowd(world.demo).batch
    tenant = resolve_tenant(world.manager, "demo-lab")
    job = started(
        django_capture_on_commit_callbacks, mturk_publish_start, tenant=tenant, batch=batch, actor=world.manager
    )
    assert (job.kind, job.params, job.organization_id, job.project_id) == (
        PUBLISH,
        {"batch_id": batch.pk},
        world.demo.org.pk,
        world.demo.project.pk,
    )
    expect_qualification_type(stub, batch)
    expect_hit_type(stub)
    for index in range(3):
        expect_hit(stub, batch, index)

    job = run(job)

    assert job.state == Job.State.SUCCEEDED, job.message
    assert job.report == {
        "hit_type_id": HIT_TYPE_ID,
        "qualification_type_id": QUAL_ID,
        "created": 3,
        "hits": 3,
        "units": 3,
    }
    assert job.message == "3 HITs created; the batch has 3 HITs for 3 units."
    assert (job.progress_done, job.progress_total, job.percent) == (3, 3, 100)
    assert CrowdHit.objects.filter(batch=batch).count() == 3


def test_it_fails_the_job_with_mturks_message_and_a_retry_carries_on(
    world: World, mturk: tuple[MTurkClient, Stubber], django_capture_on_commit_callbacks: Any
) -> None:
    _, stub = mturk
    batch = mturk_crowd(world.demo, with_test=False).batch
    tenant = resolve_tenant(world.owner, "demo-lab")
    job = started(
        django_capture_on_commit_callbacks, mturk_publish_start, tenant=tenant, batch=batch, actor=world.owner
    )
    expect_hit_type(stub, with_test=False)
    expect_hit(stub, batch, 0)
    stub.add_client_error(
        "create_hit_with_hit_type",
        service_error_code="RequestError",
        service_message="This Requester has insufficient funds in their account to complete this transaction.",
        http_status_code=400,
        expected_params=hit_params(batch, 1),
    )
    job = run(job)
    assert job.state == Job.State.FAILED
    assert job.message == (
        "MTurk create_hit_with_hit_type failed: RequestError: "
        "This Requester has insufficient funds in their account to complete this transaction."
    )
    assert CrowdHit.objects.filter(batch=batch).count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        job_retry(job=job, actor=world.owner)
    expect_hit_type(stub, with_test=False)
    expect_hit(stub, batch, 1)
    expect_hit(stub, batch, 2)
    job = run(job)
    assert job.state == Job.State.SUCCEEDED, job.message
    assert (job.report["created"], job.report["hits"], job.attempts) == (2, 3, 2)


def test_it_lets_only_managers_publish_their_own_batches(world: World, settings: Settings) -> None:
    settings.SITE_URL = "https://annotate.example.org"
    batch = mturk_crowd(world.demo).batch
    with pytest.raises(PermissionDenied):
        mturk_publish_start(tenant=resolve_tenant(world.reviewer, "demo-lab"), batch=batch, actor=world.reviewer)
    foreign = mturk_crowd(world.other).batch
    with pytest.raises(Http404):
        mturk_publish_start(tenant=resolve_tenant(world.manager, "demo-lab"), batch=foreign, actor=world.manager)
    settings.SITE_URL = "http://annotate.example.org"
    with pytest.raises(ValidationError, match="https"):
        mturk_publish_start(tenant=resolve_tenant(world.manager, "demo-lab"), batch=batch, actor=world.manager)
    assert not Job.objects.filter(kind=PUBLISH).exists()


def test_it_stops_a_publish_whose_starter_no_longer_manages(
    world: World, mturk: tuple[MTurkClient, Stubber], django_capture_on_commit_callbacks: Any
) -> None:
    batch = mturk_crowd(world.demo).batch
    tenant = resolve_tenant(world.manager, "demo-lab")
    job = started(
        django_capture_on_commit_callbacks, mturk_publish_start, tenant=tenant, batch=batch, actor=world.manager
    )
    Membership.objects.filter(user=world.manager).update(role=Role.ANNOTATOR)
    job = run(job)
    assert job.state == Job.State.FAILED and "no longer a manager" in job.message
    assert not CrowdHit.objects.exists()


@pytest.mark.parametrize("kind", [PUBLISH, SYNC])
def test_it_fails_a_job_naming_another_organisations_batch(
    world: World, mturk: tuple[MTurkClient, Stubber], django_capture_on_commit_callbacks: Any, kind: str
) -> None:
    foreign = mturk_crowd(world.other)
    hit_row(foreign.batch)
    pending = decision(answered(foreign, "A-foreign", state=State.APPROVED), ReviewAction.Kind.APPROVE, "")
    with django_capture_on_commit_callbacks(execute=True):
        job = job_start(
            organization=world.demo.org, kind=kind, params={"batch_id": foreign.batch.pk}, created_by=world.manager
        )
    job = run(job)  # no MTurk call is queued: one made would fail the job with another reason
    assert job.state == Job.State.FAILED
    assert job.message == "The job names no Mechanical Turk batch of its organisation."
    pending.refresh_from_db()
    assert pending.delivery == ReviewAction.Delivery.PENDING
    assert CrowdHit.objects.filter(batch=foreign.batch).count() == 1


# --- syncing ----------------------------------------------------------------------------------


def test_it_syncs_a_batch_as_a_job(
    world: World, mturk: tuple[MTurkClient, Stubber], django_capture_on_commit_callbacks: Any
) -> None:
    _, stub = mturk
    crowd = mturk_crowd(world.demo)
    hit_row(crowd.batch)
    approve = decision(answered(crowd, "A1", state=State.APPROVED), ReviewAction.Kind.APPROVE, "Thanks.")
    tenant = resolve_tenant(world.reviewer, "demo-lab")
    job = started(
        django_capture_on_commit_callbacks, mturk_sync_start, tenant=tenant, batch=crowd.batch, actor=world.reviewer
    )
    expect_listing(stub, "HIT0", [mturk_assignment("A1", "Submitted"), mturk_assignment("A-stranger", "Submitted")])
    stub.add_response("approve_assignment", {}, {"AssignmentId": "A1", "RequesterFeedback": "Thanks."})

    job = run(job)

    assert job.state == Job.State.SUCCEEDED, job.message
    assert job.message == (
        "1 HIT, 2 assignments on MTurk: 0 states recorded, 1 decision sent, 1 assignment without an answer here."
    )
    assert [row["assignment_id"] for row in job.report["unmatched"]] == ["A-stranger"]
    assert job.report["delivered"] == [
        {"action": approve.pk, "kind": "approve", "assignment_id": "A1", "result": "approved"}
    ]
    approve.refresh_from_db()
    assert approve.delivery == ReviewAction.Delivery.SENT


def test_it_lets_reviewers_and_above_sync(world: World) -> None:
    batch = mturk_crowd(world.demo).batch
    with pytest.raises(PermissionDenied):
        mturk_sync_start(tenant=resolve_tenant(world.annotator, "demo-lab"), batch=batch, actor=world.annotator)
    link = crowd_setup(world.other, provider="link").batch
    with pytest.raises(Http404):
        mturk_sync_start(tenant=resolve_tenant(world.manager, "demo-lab"), batch=link, actor=world.manager)
    with pytest.raises(ValidationError, match="does not run on Mechanical Turk"):
        mturk_sync_start(tenant=resolve_tenant(world.outsider, "other-lab"), batch=link, actor=world.outsider)


# --- qualification scores ---------------------------------------------------------------------


def test_it_grants_a_workers_score_as_a_job_once(
    world: World, mturk: tuple[MTurkClient, Stubber], django_capture_on_commit_callbacks: Any
) -> None:
    _, stub = mturk
    crowd = mturk_crowd(world.demo)
    worker = services.worker_enter(batch=crowd.batch, external_id="W-qual")
    context = {"assignment_id": "A1", "hit_id": "HIT0", "turk_submit_to": "https://workersandbox.mturk.com"}
    with django_capture_on_commit_callbacks(execute=True):
        attempt = services.qualification_begin(worker=worker, batch=crowd.batch, context=context).attempt
        assert enqueue_qualification_score(attempt) is None  # not submitted yet
        attempt = services.qualification_submit(attempt=attempt, answers=["one", "one"])
        job = enqueue_qualification_score(attempt)
    assert job is not None and enqueue_qualification_score(attempt) == job
    job.refresh_from_db()
    assert (job.kind, job.params, job.created_by, job.state) == (GRANT, {"attempt_id": attempt.pk}, None, "queued")
    expect_qualification_type(stub, crowd.batch)
    stub.add_response(
        "associate_qualification_with_worker",
        {},
        {"QualificationTypeId": QUAL_ID, "WorkerId": "W-qual", "IntegerValue": 100, "SendNotification": False},
    )
    job = run(job)
    assert job.state == Job.State.SUCCEEDED, job.message
    assert job.report == {"worker_id": "W-qual", "qualification_type_id": QUAL_ID, "score": 100, "passed": True}
    assert job.message == "Score 100 granted to worker W-qual."


def test_it_queues_no_score_for_a_study_link_worker(world: World) -> None:
    crowd = crowd_setup(world.demo, provider="link")
    worker = services.worker_enter(batch=crowd.batch, external_id="prolific-1")
    attempt = services.qualification_begin(worker=worker, batch=crowd.batch, context={"session_id": "s"}).attempt
    attempt = services.qualification_submit(attempt=attempt, answers=["one", "one"])
    assert enqueue_qualification_score(attempt) is None
    assert not Job.objects.filter(kind=GRANT).exists()


def test_it_fails_a_score_job_naming_another_organisations_attempt(
    world: World, mturk: tuple[MTurkClient, Stubber], django_capture_on_commit_callbacks: Any
) -> None:
    crowd = mturk_crowd(world.other)
    worker = services.worker_enter(batch=crowd.batch, external_id="W-other")
    attempt = services.qualification_begin(worker=worker, batch=crowd.batch, context={"assignment_id": "A9"}).attempt
    with django_capture_on_commit_callbacks(execute=True):
        job = job_start(organization=world.demo.org, kind=GRANT, params={"attempt_id": attempt.pk})
    job = run(job)
    assert (job.state, job.message) == (Job.State.FAILED, "The job names no qualification attempt of its organisation.")


# --- manage.py crowd_sync ---------------------------------------------------------------------


@dataclass
class Ran:
    out: list[str]
    err: list[str]
    error: str  # the CommandError's text, "" when the command succeeded


def crowd_sync(*args: str) -> Ran:
    out, err = io.StringIO(), io.StringIO()
    error = ""
    try:
        call_command("crowd_sync", *args, stdout=out, stderr=err)
    except CommandError as exc:
        error = str(exc)
    return Ran(out.getvalue().splitlines(), err.getvalue().splitlines(), error)


def test_it_syncs_the_open_batches_and_those_with_decisions_to_send(
    world: World, mturk: tuple[MTurkClient, Stubber]
) -> None:
    _, stub = mturk
    open_batch = mturk_crowd(world.demo)
    hit_row(open_batch.batch, "HIT-open")
    closed = mturk_crowd(world.other)
    closed.batch.state = "closed"
    closed.batch.save(update_fields=["state"])
    approve = decision(answered(closed, "A-closed", state=State.APPROVED), ReviewAction.Kind.APPROVE, "")
    crowd_setup(world.demo, provider="link", regular=1, hidden=0, qualification=0, with_test=False)
    expect_listing(stub, "HIT-open")
    stub.add_response("approve_assignment", {}, {"AssignmentId": "A-closed"})

    ran = crowd_sync()

    assert ran.out == [
        f"batch {open_batch.batch.pk} Parts: 1 HIT, 0 assignments on MTurk: 0 states recorded, 0 decisions sent.",
        f"batch {closed.batch.pk} Parts: 0 HITs, 0 assignments on MTurk: 0 states recorded, 1 decision sent.",
    ]
    assert (ran.err, ran.error) == ([], "")
    approve.refresh_from_db()
    assert approve.delivery == ReviewAction.Delivery.SENT


def test_it_syncs_one_batch_and_exits_with_an_error_when_mturk_failed(
    world: World, mturk: tuple[MTurkClient, Stubber]
) -> None:
    _, stub = mturk
    crowd = mturk_crowd(world.demo)
    hit_row(crowd.batch)
    approve = decision(answered(crowd, "A1", state=State.APPROVED), ReviewAction.Kind.APPROVE, "")
    expect_listing(stub, "HIT0", [mturk_assignment("A1", "Submitted"), mturk_assignment("A-x", "Approved")])
    stub.add_client_error("approve_assignment", "ServiceFault", "Try again later.", http_status_code=500)

    ran = crowd_sync("--batch", str(crowd.batch.pk))

    assert ran.error == "1 Mechanical Turk operations failed; the next sync tries them again."
    assert ran.out[0].startswith(f"batch {crowd.batch.pk} Parts: 1 HIT, 2 assignments on MTurk")
    assert ran.err == [
        f"batch {crowd.batch.pk}: approve #{approve.pk} not sent: "
        "MTurk approve_assignment failed: ServiceFault: Try again later.",
        f"batch {crowd.batch.pk}: assignment A-x: No answer of this assignment was recorded here.",
    ]
    approve.refresh_from_db()
    assert approve.delivery == ReviewAction.Delivery.FAILED


def test_it_refuses_a_batch_it_cannot_sync(world: World, mturk: tuple[MTurkClient, Stubber]) -> None:
    link = crowd_setup(world.demo, provider="link", with_test=False).batch
    assert crowd_sync("--batch", str(link.pk)).error == f"Batch {link.pk} does not run on Mechanical Turk."
    assert crowd_sync("--batch", "999999").error == "No crowd batch with id 999999."
