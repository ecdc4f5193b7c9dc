"""Mechanical Turk operations on the platform's rows: publishing a batch's HITs, syncing a batch
(what MTurk knows about its assignments comes back; what reviewers decided goes out), granting the
qualification score of a worker's test, and e-mailing a batch's workers.

Every operation takes an ``MTurkClient`` (``crowd.mturk``; the jobs in ``crowd.mturk_jobs`` make
one from the settings) and may be run again at any time: what an earlier run finished is found
done, never done twice. Every query goes through the batch's organisation (``for_org``).

How the qualification test gates paid work
------------------------------------------
The test runs on our pages inside the HIT: a worker who accepts a HIT and has not passed the
project's test takes it first (``crowd.views``), and only a pass leads on to paid items; a worker
who fails is asked to return the HIT, never reaches MTurk's submit form, and waits out the retake
delay we keep. So the in-page test is the gate, and the HIT type carries no requirement on the
project's qualification type: a requirement, even one guarding only "Accept", would keep out every
worker who has not taken the test yet, and accepting a HIT is the only way to reach the test.
The project's custom qualification type (created on the first publish) still records each MTurk
worker's score in percent, passed or failed, so the requester sees it on MTurk and may require it
on HITs of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from annotation.models import Annotation, MediaItem
from crowd.models import (
    CrowdAssignment,
    CrowdBatch,
    CrowdHit,
    CrowdWorker,
    GoldItem,
    Provider,
    QualificationAttempt,
    QualificationTest,
    ReviewAction,
    TaskKind,
)
from crowd.mturk import (
    NOTIFY_MESSAGE_MAX,
    NOTIFY_SUBJECT_MAX,
    MTurkClient,
    MTurkError,
    external_question,
)
from crowd.selectors import batch_entry_urls
from platform_core.models import Organization

Progress = Callable[[int, int, str], None]

# Submitted work MTurk approves by itself after this unless we approve or reject it sooner.
AUTO_APPROVAL_DELAY_SECONDS = 3 * 24 * 3600
# MTurk's documented limits on a HIT type's texts.
TITLE_MAX = 128
DESCRIPTION_MAX = 2000
QUALIFICATION_NAME_MAX = 200

STATE_FROM_MTURK = {
    "Submitted": CrowdAssignment.State.SUBMITTED,
    "Approved": CrowdAssignment.State.APPROVED,
    "Rejected": CrowdAssignment.State.REJECTED,
}
UNDELIVERED = (ReviewAction.Delivery.PENDING, ReviewAction.Delivery.FAILED)
DELIVERED_KINDS = (ReviewAction.Kind.APPROVE, ReviewAction.Kind.REJECT, ReviewAction.Kind.BONUS)


def _no_progress(done: int, total: int, message: str) -> None:
    return None


def _org(batch: CrowdBatch) -> Organization:
    return batch.project.organization


# --- units ----------------------------------------------------------------------------------
def batch_unit_count(batch: CrowdBatch) -> int:
    """How many regular (not gold) units the batch has: the objects of the question's label for an
    object question, else the project's images; gold units are left out."""
    org = _org(batch)
    gold = GoldItem.objects.for_org(org).filter(project=batch.project_id)
    if batch.object_units:
        gold_objects = gold.filter(question=batch.question_id, annotation__isnull=False).values("annotation")
        return (
            Annotation.objects.for_org(org)
            .filter(
                media__project=batch.project_id,
                media__kind=MediaItem.Kind.IMAGE,
                label=batch.question.label_id,
                proposed=False,
            )
            .exclude(pk__in=gold_objects)
            .count()
        )
    if batch.kind == TaskKind.MASK:
        gold = gold.filter(label=batch.label_id, question__isnull=True)
    else:
        gold = gold.filter(question=batch.question_id, annotation__isnull=True)
    return (
        MediaItem.objects.for_org(org)
        .filter(project=batch.project_id, kind=MediaItem.Kind.IMAGE)
        .exclude(pk__in=gold.values("media"))
        .count()
    )


# --- qualification type ---------------------------------------------------------------------
def qualification_type_name(test: QualificationTest) -> str:
    """One name per project (MTurk refuses a second type of the same name for a requester)."""
    suffix = f" test ({test.project_id})"
    return test.project.name[: QUALIFICATION_NAME_MAX - len(suffix)] + suffix


def ensure_qualification_type(test: QualificationTest, client: MTurkClient) -> str:
    """The project's MTurk qualification type, created (and stored) the first time it is needed."""
    if not test.mturk_qualification_type_id:
        test.refresh_from_db(fields=["mturk_qualification_type_id"])  # stored since this row was read?
    if test.mturk_qualification_type_id:
        return test.mturk_qualification_type_id
    description = f"Your score in percent on the qualification test of {test.project.name}, taken inside its HITs."
    type_id = client.create_qualification_type(
        name=qualification_type_name(test),
        description=description[:DESCRIPTION_MAX],
        keywords=["qualification", "annotation"],
    )
    tests = QualificationTest.objects.for_org(test.project.organization).filter(pk=test.pk)
    if not tests.filter(mturk_qualification_type_id="").update(mturk_qualification_type_id=type_id):
        # Another run stored one first: that one stands.
        test.refresh_from_db(fields=["mturk_qualification_type_id"])
        return test.mturk_qualification_type_id
    test.mturk_qualification_type_id = type_id
    return type_id


def score_percent(score: float) -> int:
    """A test score (a share of 0 to 1) as the qualification's integer value."""
    return max(0, min(100, round(score * 100)))


# --- publishing -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PublishReport:
    hit_type_id: str
    qualification_type_id: str
    created: int  # HITs created by this run
    hits: int  # the batch's HITs now
    units: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def publish_check(batch: CrowdBatch) -> str:
    """Refuse, before any call to MTurk, a batch that cannot be published; its ExternalQuestion URL."""
    if batch.provider != Provider.MTURK:
        raise ValidationError("Only Mechanical Turk batches are published as HITs.")
    if batch.state != CrowdBatch.State.OPEN:
        raise ValidationError("The batch is closed: reopen it before publishing HITs.")
    if batch.reward_cents < 1:
        raise ValidationError("Set the batch's reward per HIT (at least 1 cent) before publishing it.")
    url = dict(batch_entry_urls(batch))["mturk"]
    try:
        external_question(url)
    except ValueError:
        raise ValidationError(
            f"Mechanical Turk frames only https pages, and this batch's task page is {url}: "
            "set SITE_URL to the platform's public https address."
        ) from None
    return url


def hit_request_token(batch: CrowdBatch, index: int) -> str:
    """The UniqueRequestToken of the batch's HIT number ``index`` (from 0): a retried run sends the
    same one, so MTurk creates that HIT once. The public id keeps tokens apart across installations."""
    return f"hit-{batch.public_id}-{index}"


def _hit_type_texts(batch: CrowdBatch, has_test: bool) -> tuple[str, str, list[str]]:
    if batch.kind == TaskKind.MASK and batch.label is not None:
        title = f"Outline the {batch.label.name} in an image"
        description = f"Draw the outline of the {batch.label.name} in one image."
        keywords = ["image", "annotation", "segmentation"]
    else:
        title = batch.question.text if batch.question is not None else batch.name
        what = "the highlighted part of an image" if batch.object_units else "an image"
        description = f"Look at {what} and answer: {title}"
        keywords = ["image", "annotation", "classification"]
    if has_test:
        description += " New workers take a short qualification test first."
    return title[:TITLE_MAX], description[:DESCRIPTION_MAX], keywords


def _hit_type(batch: CrowdBatch, client: MTurkClient, *, has_test: bool) -> str:
    """The batch's HIT type, asked of MTurk each time HITs are created: MTurk answers the same id
    for the same properties, and a new one after the reward or durations changed."""
    title, description, keywords = _hit_type_texts(batch, has_test)
    hit_type_id = client.create_hit_type(
        title=title,
        description=description,
        reward=Decimal(batch.reward_cents) / 100,
        assignment_duration_seconds=batch.assignment_minutes * 60,
        auto_approval_delay_seconds=AUTO_APPROVAL_DELAY_SECONDS,
        keywords=keywords,
    )
    if hit_type_id != batch.hit_type_id:
        CrowdBatch.objects.for_org(_org(batch)).filter(pk=batch.pk).update(hit_type_id=hit_type_id)
        batch.hit_type_id = hit_type_id
    return hit_type_id


def _create_hit(batch: CrowdBatch, client: MTurkClient, *, hit_type_id: str, url: str, index: int) -> CrowdHit:
    token = hit_request_token(batch, index)
    try:
        created = client.create_hit(
            hit_type_id=hit_type_id,
            url=url,
            lifetime_seconds=batch.hit_lifetime_hours * 3600,
            max_assignments=batch.assignments_per_item,
            requester_annotation=token,
            unique_request_token=token,
        )
    except MTurkError as exc:
        if not exc.duplicate_request:
            raise
        raise MTurkError(
            operation=exc.operation,
            code=exc.code,
            message=f"MTurk created HIT {index + 1} of this batch for an earlier run whose answer never "
            f"arrived, so its id is not recorded here (its RequesterAnnotation is {token!r}). MTurk "
            "remembers the request for 24 hours; publishing after that creates a replacement.",
        ) from exc
    # Recorded at once: a failure on a later HIT leaves this one counted.
    return CrowdHit.objects.create(
        batch=batch,
        hit_id=created["HITId"],
        max_assignments=batch.assignments_per_item,
        expires_at=created.get("Expiration"),
    )


def publish_batch(batch: CrowdBatch, client: MTurkClient, *, progress: Progress | None = None) -> PublishReport:
    """Publish one HIT per regular unit of an MTurk batch, ``assignments_per_item`` assignments
    each, framing the batch's entry URL; each assignment picks its unit on arrival.

    Creates the project's qualification type first when the project has a test (see the module's
    docstring for why the HIT type does not require it). HITs already recorded are counted, so a
    second run creates only the missing ones (units added since, or those a failed run did not
    reach). ValidationError before any call for a batch that cannot be published; MTurkError
    with MTurk's message when a call fails, everything created until then being recorded."""
    progress = progress or _no_progress
    url = publish_check(batch)
    org = _org(batch)
    test = QualificationTest.objects.for_org(org).select_related("project").filter(project=batch.project_id).first()
    qualification_type_id = ensure_qualification_type(test, client) if test is not None else ""
    existing = CrowdHit.objects.for_org(org).filter(batch=batch).count()
    units = batch_unit_count(batch)
    missing = max(0, units - existing)
    if missing:
        hit_type_id = _hit_type(batch, client, has_test=test is not None)
        for done, index in enumerate(range(existing, units), start=1):
            _create_hit(batch, client, hit_type_id=hit_type_id, url=url, index=index)
            progress(done, missing, f"HIT {index + 1} of {units} created")
    return PublishReport(
        hit_type_id=batch.hit_type_id,
        qualification_type_id=qualification_type_id,
        created=missing,
        hits=existing + missing,
        units=units,
    )


# --- syncing --------------------------------------------------------------------------------
@dataclass
class SyncReport:
    """What a sync did, as tables for the job page: states recorded from MTurk, MTurk assignments
    with no answer here, disagreements left to a person, decisions delivered or failed (failed
    ones are tried again by the next sync), and HITs whose assignments could not be listed."""

    hits: int = 0
    assignments: int = 0
    recorded: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    delivered: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for people: what was done, what went wrong (the first MTurk message)."""
        counts = [
            counted(self.hits, "HIT") + ",",
            counted(self.assignments, "assignment") + " on MTurk:",
            counted(len(self.recorded), "state") + " recorded,",
            counted(len(self.delivered), "decision") + " sent",
        ]
        problems = [
            (self.failed, "decision", "not sent (tried again next sync)"),
            (self.errors, "HIT", "not listed"),
            (self.unmatched, "assignment", "without an answer here"),
            (self.conflicts, "disagreement", "to look at"),
        ]
        text = " ".join(counts) + "".join(
            f", {counted(len(rows), noun)} {what}" for rows, noun, what in problems if rows
        )
        first_error = (self.errors or self.failed or [{}])[0].get("error")
        return f"{text}. {first_error}" if first_error else f"{text}."


def counted(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def sync_batch(batch: CrowdBatch, client: MTurkClient, *, progress: Progress | None = None) -> SyncReport:
    """Bring a batch and MTurk in step.

    1. Lists the assignments of every HIT of the batch and matches them to our assignments by
       ``assignment_id``. Where MTurk is ahead (it approved, automatically or on the requester
       site, or rejected work still submitted here) our assignment takes its state, with an audit
       record. An MTurk assignment with no answer here is reported, never invented.
    2. Sends the reviewers' decisions not yet delivered (pending, or failed before): approve and
       reject with the reason as the worker's feedback, bonuses with a token from the record so
       a retry pays once. Blocks and unblocks stay on the platform (MTurk's own block would hide
       all of the requester's HITs from the worker). Bonuses given to a worker rather than to one
       assignment go with the worker's latest answered assignment of this batch.

    An MTurk call that fails is recorded (on the decision, or in the report) and the sync goes on
    with the rest; the next sync tries it again."""
    progress = progress or _no_progress
    org = _org(batch)
    report = SyncReport()
    statuses: dict[str, str] = {}
    hits = list(CrowdHit.objects.for_org(org).filter(batch=batch).order_by("pk"))
    report.hits = len(hits)
    for done, hit in enumerate(hits, start=1):
        try:
            listed = client.list_assignments(hit.hit_id)
        except MTurkError as exc:
            report.errors.append({"hit_id": hit.hit_id, "error": str(exc)})
            continue
        report.assignments += len(listed)
        statuses.update({item["AssignmentId"]: item["AssignmentStatus"] for item in listed})
        _record_states(batch, org, listed, report)
        CrowdHit.objects.for_org(org).filter(pk=hit.pk).update(synced_at=timezone.now())
        progress(done, len(hits), f"HIT {done} of {len(hits)} synced")
    actions = list(_undelivered(batch, org))
    for done, action in enumerate(actions, start=1):
        _deliver(action, _action_assignment(action, batch, org), org, client, statuses, report)
        progress(len(hits) + done, len(hits) + len(actions), f"Decision {done} of {len(actions)} delivered")
    return report


def _record_states(batch: CrowdBatch, org: Organization, listed: list[dict[str, Any]], report: SyncReport) -> None:
    ids = [item["AssignmentId"] for item in listed]
    rows = {
        row.assignment_id: row
        for row in CrowdAssignment.objects.for_org(org).filter(batch=batch, assignment_id__in=ids)
    }
    for item in listed:
        row = rows.get(item["AssignmentId"])
        if row is None:
            report.unmatched.append(_mturk_row(item, "No answer of this assignment was recorded here."))
            continue
        _record_state(row, item, org, report)


def _mturk_row(item: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        "assignment_id": item["AssignmentId"],
        "worker_id": item.get("WorkerId", ""),
        "hit_id": item.get("HITId", ""),
        "mturk_status": item["AssignmentStatus"],
        "reason": reason,
    }


def _record_state(row: CrowdAssignment, item: dict[str, Any], org: Organization, report: SyncReport) -> None:
    status = item["AssignmentStatus"]
    target = STATE_FROM_MTURK.get(status)
    if target is None or row.state == target:
        return
    if row.state == CrowdAssignment.State.ASSIGNED:
        report.conflicts.append(_mturk_row(item, f"MTurk says {status}, but the answer never reached us."))
        return
    if row.state != CrowdAssignment.State.SUBMITTED:
        if status != "Submitted":  # otherwise our decision is on its way to MTurk
            reason = f"Decided {row.state} here, but {status} on MTurk."
            report.conflicts.append(_mturk_row(item, reason))
        return
    feedback = str(item.get("RequesterFeedback", ""))[:1000]
    when = item.get("ApprovalTime" if status == "Approved" else "RejectionTime") or timezone.now()
    kind = ReviewAction.Kind.APPROVE if status == "Approved" else ReviewAction.Kind.REJECT
    with transaction.atomic():
        moved = (
            CrowdAssignment.objects.for_org(org)
            .filter(pk=row.pk, state=CrowdAssignment.State.SUBMITTED)
            .update(state=target, reviewed_at=when, review_reason=feedback)
        )
        if not moved:  # a reviewer decided meanwhile: their decision stands
            return
        ReviewAction.objects.create(
            organization=org,
            kind=kind,
            assignment=row,
            worker_id=row.worker_id,
            reason=feedback or f"{status} on Mechanical Turk (automatic approval or the requester site).",
            delivery=ReviewAction.Delivery.NONE,
        )
    report.recorded.append({"assignment_id": row.assignment_id, "from": row.state, "to": target})


def _undelivered(batch: CrowdBatch, org: Organization) -> QuerySet:
    """The batch's decisions still to send: those on its MTurk assignments, and bonuses given to
    one of its MTurk workers as a whole."""
    workers = CrowdAssignment.objects.for_org(org).filter(batch=batch).exclude(assignment_id="").values("worker")
    return (
        ReviewAction.objects.for_org(org)
        .filter(kind__in=DELIVERED_KINDS, delivery__in=UNDELIVERED)
        .filter(
            Q(assignment__batch=batch)
            | Q(
                assignment__isnull=True,
                kind=ReviewAction.Kind.BONUS,
                worker__provider=Provider.MTURK,
                worker__in=workers,
            )
        )
        .select_related("assignment__worker")
        .order_by("created_at", "pk")
    )


def _action_assignment(action: ReviewAction, batch: CrowdBatch, org: Organization) -> CrowdAssignment | None:
    if action.assignment is not None:
        return action.assignment if action.assignment.assignment_id else None
    answered = (CrowdAssignment.State.SUBMITTED, CrowdAssignment.State.APPROVED)
    return (
        CrowdAssignment.objects.for_org(org)
        .filter(batch=batch, worker=action.worker_id, state__in=answered)
        .exclude(assignment_id="")
        .select_related("worker")
        .order_by("-submitted_at", "-pk")
        .first()
    )


class _Undeliverable(Exception):
    """A decision MTurk cannot carry out, known without asking it."""


def _send(action: ReviewAction, assignment: CrowdAssignment, client: MTurkClient, status: str) -> str:
    """Make the MTurk call a decision needs; what happened, in words."""
    if action.kind == ReviewAction.Kind.APPROVE:
        if status == "Approved":
            return "already approved on MTurk"
        client.approve_assignment(assignment.assignment_id, feedback=action.reason)
        return "approved"
    if action.kind == ReviewAction.Kind.REJECT:
        if status == "Rejected":
            return "already rejected on MTurk"
        if status == "Approved":
            raise _Undeliverable("MTurk has already approved (and paid) this assignment; it cannot be rejected now.")
        client.reject_assignment(assignment.assignment_id, feedback=action.reason)
        return "rejected"
    payment = client.send_bonus(
        bonus_id=action.pk,
        worker_id=assignment.worker.external_id,
        assignment_id=assignment.assignment_id,
        amount=Decimal(action.amount_cents) / 100,
        reason=action.reason,
    )
    return "paid by an earlier try" if payment.already_paid else "paid"


def _deliver(
    action: ReviewAction,
    assignment: CrowdAssignment | None,
    org: Organization,
    client: MTurkClient,
    statuses: dict[str, str],
    report: SyncReport,
) -> None:
    row = {"action": action.pk, "kind": action.kind, "assignment_id": assignment.assignment_id if assignment else ""}
    try:
        if assignment is None:
            raise _Undeliverable("The worker has no answered MTurk assignment in this batch to send it with.")
        result = _send(action, assignment, client, statuses.get(assignment.assignment_id, ""))
    except (MTurkError, ValueError, _Undeliverable) as exc:
        _mark(action, org, ReviewAction.Delivery.FAILED, str(exc))
        report.failed.append({**row, "error": str(exc)})
        return
    _mark(action, org, ReviewAction.Delivery.SENT, "")
    report.delivered.append({**row, "result": result})


def _mark(action: ReviewAction, org: Organization, delivery: str, error: str) -> None:
    """Record a delivery; a decision another sync delivered meanwhile stays sent."""
    delivered_at = timezone.now() if delivery == ReviewAction.Delivery.SENT else None
    ReviewAction.objects.for_org(org).filter(pk=action.pk, delivery__in=UNDELIVERED).update(
        delivery=delivery, delivery_error=error[:1000], delivered_at=delivered_at
    )


# --- qualification scores -------------------------------------------------------------------
def is_mturk_attempt(attempt: QualificationAttempt) -> bool:
    """The worker took the test inside an MTurk HIT (so MTurk knows them by their worker id)."""
    return attempt.worker.provider == Provider.MTURK and bool(attempt.context.get("assignment_id"))


def grant_qualification(attempt: QualificationAttempt, client: MTurkClient) -> dict[str, Any]:
    """Give an MTurk worker the project's qualification with their test score in percent as its
    value, passed or failed (the value says which). Nothing is sent for a worker who did not come
    through MTurk, or for an attempt a later one of the same worker replaced (its score stands).
    What was done, for the job's report."""
    if not is_mturk_attempt(attempt):
        return {"skipped": "The worker did not take the test through Mechanical Turk."}
    if attempt.finished_at is None or attempt.score is None:
        raise ValidationError("The test has not been submitted yet: there is no score to grant.")
    org = attempt.test.project.organization
    latest = (
        QualificationAttempt.objects.for_org(org)
        .filter(worker=attempt.worker_id, test=attempt.test_id, finished_at__isnull=False)
        .order_by("-finished_at", "-pk")
        .first()
    )
    if latest is not None and latest.pk != attempt.pk:
        return {"skipped": "A later attempt of the same worker replaced this one."}
    type_id = ensure_qualification_type(attempt.test, client)
    score = score_percent(attempt.score)
    client.set_qualification_score(qualification_type_id=type_id, worker_id=attempt.worker.external_id, score=score)
    return {
        "worker_id": attempt.worker.external_id,
        "qualification_type_id": type_id,
        "score": score,
        "passed": bool(attempt.passed),
    }


# --- notifications --------------------------------------------------------------------------
def batch_mturk_worker_ids(batch: CrowdBatch) -> list[str]:
    """The MTurk worker ids of everyone who took an assignment of the batch, blocked workers left out."""
    org = _org(batch)
    took = CrowdAssignment.objects.for_org(org).filter(batch=batch).exclude(assignment_id="").values("worker")
    workers = CrowdWorker.objects.for_org(org).filter(pk__in=took, provider=Provider.MTURK, blocked=False)
    return list(workers.order_by("external_id").values_list("external_id", flat=True))


def notify_batch_workers(batch: CrowdBatch, subject: str, message: str, client: MTurkClient) -> list[dict[str, Any]]:
    """E-mail the batch's MTurk workers (not blocked ones) through MTurk, 100 to a call; the
    failures MTurk reports, one per worker it could not reach. ValidationError for an empty or
    too long subject or message, before anything is sent."""
    subject, message = subject.strip(), message.strip()
    if not subject or len(subject) > NOTIFY_SUBJECT_MAX:
        raise ValidationError(f"Write a subject of 1 to {NOTIFY_SUBJECT_MAX} characters.")
    if not message or len(message) > NOTIFY_MESSAGE_MAX:
        raise ValidationError(f"Write a message of 1 to {NOTIFY_MESSAGE_MAX} characters.")
    worker_ids = batch_mturk_worker_ids(batch)
    if not worker_ids:
        return []
    return client.notify_workers(subject=subject, message=message, worker_ids=worker_ids)
