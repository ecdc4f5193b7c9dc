"""A Mechanical Turk batch on one side of the world fixture, and what MTurk is expected to be asked
and to answer about it, queued on botocore's Stubber (which checks both against MTurk's service
model): the qualification type, the HIT type, HITs, assignment listings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from botocore.stub import Stubber
from pytest_django import Settings

from crowd.models import CrowdAssignment, CrowdBatch, CrowdHit, CrowdWorker, Provider, ReviewAction
from crowd.mturk import MTurkClient, external_question
from crowd.mturk_ops import hit_request_token
from tests.crowd.helpers import Crowd, crowd_setup

SITE = "https://annotate.example.org"
HIT_TYPE_ID = "3X8GW1LKZ7CWXQ1DWX9YDFXS6ZZN3Q"
QUAL_ID = "3SNTKV7VHPC9JEJRZ7C0AOA2ZO7C2W"
ALL_STATUSES = ["Submitted", "Approved", "Rejected"]
EXPIRES = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
DUPLICATE_MESSAGE = 'The idempotency token "{token}" has already been processed. (1626172412406)'


@contextmanager
def stubbed_client(settings: Settings) -> Iterator[tuple[MTurkClient, Stubber]]:
    """The client the settings make, every call answered by the Stubber; on leaving, every
    response queued must have been asked for."""
    settings.MTURK_SANDBOX = True
    settings.MTURK_ENDPOINT_URL = ""
    settings.MTURK_ACCESS_KEY_ID = "testing"
    settings.MTURK_SECRET_ACCESS_KEY = "testing"
    settings.SITE_URL = SITE
    client = MTurkClient.from_settings()
    with Stubber(client.client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def mturk_crowd(side: Any, *, reward_cents: int = 5, with_test: bool = True, regular: int = 3) -> Crowd:
    """An open MTurk batch of ``regular`` items (k = 3) with hidden and qualification gold."""
    crowd = crowd_setup(side, provider="mturk", regular=regular, hidden=1, qualification=2, with_test=with_test)
    crowd.batch.reward_cents = reward_cents
    crowd.batch.save(update_fields=["reward_cents"])
    return crowd


def entry_url(batch: CrowdBatch) -> str:
    return f"{SITE}/crowd/mturk/{batch.public_id}/"


# --- publishing -------------------------------------------------------------------------------
def expect_qualification_type(stub: Stubber, batch: CrowdBatch, type_id: str = QUAL_ID) -> None:
    project = batch.project
    stub.add_response(
        "create_qualification_type",
        {"QualificationType": {"QualificationTypeId": type_id, "Name": "x", "QualificationTypeStatus": "Active"}},
        {
            "Name": f"{project.name} test ({project.pk})",
            "Description": f"Your score in percent on the qualification test of {project.name}, taken inside its HITs.",
            "QualificationTypeStatus": "Active",
            "Keywords": "qualification,annotation",
        },
    )


def expect_hit_type(stub: Stubber, *, with_test: bool = True, reward: str = "0.05") -> None:
    description = "Look at an image and answer: One or many instances?"
    if with_test:
        description += " New workers take a short qualification test first."
    # No QualificationRequirements: the test inside the HIT is the gate (crowd.mturk_ops).
    stub.add_response(
        "create_hit_type",
        {"HITTypeId": HIT_TYPE_ID},
        {
            "Title": "One or many instances?",
            "Description": description,
            "Reward": reward,
            "AssignmentDurationInSeconds": 30 * 60,
            "AutoApprovalDelayInSeconds": 3 * 24 * 3600,
            "Keywords": "image,annotation,classification",
        },
    )


def hit_params(batch: CrowdBatch, index: int) -> dict[str, Any]:
    token = hit_request_token(batch, index)
    return {
        "HITTypeId": HIT_TYPE_ID,
        "Question": external_question(entry_url(batch)),
        "LifetimeInSeconds": 72 * 3600,
        "MaxAssignments": 3,
        "RequesterAnnotation": token,
        "UniqueRequestToken": token,
    }


def expect_hit(stub: Stubber, batch: CrowdBatch, index: int) -> None:
    hit = {
        "HITId": f"HIT{index}",
        "HITTypeId": HIT_TYPE_ID,
        "CreationTime": datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
        "HITStatus": "Assignable",
        "MaxAssignments": 3,
        "Expiration": EXPIRES,
    }
    stub.add_response("create_hit_with_hit_type", {"HIT": hit}, hit_params(batch, index))


# --- syncing ----------------------------------------------------------------------------------
def mturk_assignment(assignment_id: str, status: str, *, hit_id: str = "HIT0", **fields: Any) -> dict[str, Any]:
    return {
        "AssignmentId": assignment_id,
        "WorkerId": f"W-{assignment_id}",
        "HITId": hit_id,
        "AssignmentStatus": status,
        "SubmitTime": datetime(2026, 5, 1, 13, 0, tzinfo=UTC),
        **fields,
    }


def expect_listing(stub: Stubber, hit_id: str, *pages: list[dict[str, Any]]) -> None:
    """MTurk's answer for one HIT's assignments, in as many pages as given."""
    for number, page in enumerate(pages or ([],)):
        expected: dict[str, Any] = {"HITId": hit_id, "AssignmentStatuses": ALL_STATUSES, "MaxResults": 100}
        if number:
            expected["NextToken"] = f"{hit_id}-page-{number}"
        response: dict[str, Any] = {"NumResults": len(page), "Assignments": page}
        if number < len(pages) - 1:
            response["NextToken"] = f"{hit_id}-page-{number + 1}"
        stub.add_response("list_assignments_for_hit", response, expected)


def hit_row(batch: CrowdBatch, hit_id: str = "HIT0") -> CrowdHit:
    return CrowdHit.objects.create(batch=batch, hit_id=hit_id, max_assignments=batch.assignments_per_item)


def answered(
    crowd: Crowd,
    assignment_id: str,
    *,
    state: str = CrowdAssignment.State.SUBMITTED,
    item: int = 0,
    worker_id: str = "",
) -> CrowdAssignment:
    """An MTurk worker's answer to one of the batch's items, as the task page records it."""
    batch = crowd.batch
    worker, _ = CrowdWorker.objects.get_or_create(
        organization=batch.project.organization, provider=Provider.MTURK, external_id=worker_id or f"W-{assignment_id}"
    )
    return CrowdAssignment.objects.create(
        batch=batch,
        worker=worker,
        media=crowd.regular[item],
        state=state,
        answer="one" if state != CrowdAssignment.State.ASSIGNED else "",
        assignment_id=assignment_id,
        hit_id="HIT0",
        turk_submit_to="https://workersandbox.mturk.com",
        submitted_at=None if state == CrowdAssignment.State.ASSIGNED else datetime(2026, 5, 1, 13, 0, tzinfo=UTC),
    )


def decision(assignment: CrowdAssignment, kind: str, reason: str, *, amount_cents: int = 0) -> ReviewAction:
    """A reviewer's decision on an MTurk assignment, waiting for the sync to send it."""
    return ReviewAction.objects.create(
        organization=assignment.batch.project.organization,
        kind=kind,
        assignment=assignment,
        worker=assignment.worker,
        reason=reason,
        amount_cents=amount_cents,
        delivery=ReviewAction.Delivery.PENDING,
    )
