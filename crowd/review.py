"""A reviewer's decisions: approving or rejecting a crowd worker's answer or a member's submitted
task, bonuses, blocking and unblocking a crowd worker, and settling an aggregated result.

Every decision but the last writes a ``ReviewAction`` (the audit) in the same transaction as the
change it records. Each carries the ``request_key`` of the form it came from: the same key a second
time (a double click, a retried post) returns the first action and changes nothing. Rejections and
bonuses need a reason the worker can read. Actions on Mechanical Turk assignments are left
``delivery=pending`` for the MTurk sync job, which makes the approve / reject / bonus calls; the
other providers have nothing to send.

Callers fetch objects through the tenancy door; these functions check again that each belongs to
the tenant (another organisation's object is a 404) and that the actor is a reviewer or above.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone

from annotation.models import Task
from annotation.tasks.services import task_review
from crowd.models import CrowdAssignment, CrowdResult, CrowdWorker, Provider, ReviewAction, TaskKind
from crowd.results import results_write
from platform_core.models import Role
from platform_core.tenancy import Tenant

T = TypeVar("T")

REASON_MAX = 1000
REQUEST_KEY_MAX = 64
# A bonus above this is almost certainly a slip (dollars typed as cents, an extra zero).
BONUS_MAX_CENTS = 100_00
REVIEWABLE = (CrowdAssignment.State.SUBMITTED,)
# An answer is in once submitted: a bonus may follow whatever the review said.
BONUSABLE = (CrowdAssignment.State.SUBMITTED, CrowdAssignment.State.APPROVED, CrowdAssignment.State.REJECTED)


def _require_reviewer(tenant: Tenant) -> None:
    if not tenant.has_role(Role.REVIEWER):
        raise PermissionDenied("Only reviewers, managers and owners review work.")


def _ours(tenant: Tenant, org_id: int, what: str) -> None:
    if org_id != tenant.org.pk:
        raise Http404(f"No such {what}.")


def _reason(reason: str, *, required: bool, what: str = "A rejection") -> str:
    reason = (reason or "").strip()
    if required and not reason:
        raise ValidationError({"reason": f"{what} needs a reason the worker can read."})
    if len(reason) > REASON_MAX:
        raise ValidationError({"reason": f"Keep the reason to {REASON_MAX} characters."})
    return reason


def _request_key(key: str) -> str:
    if not (key or "").strip() or len(key) > REQUEST_KEY_MAX:
        raise ValidationError("The form is missing its request key: reload the page and try again.")
    return key


def _earlier(tenant: Tenant, key: str) -> ReviewAction | None:
    return ReviewAction.objects.filter(organization=tenant.org, request_key=key).first()


def _once(
    tenant: Tenant,
    key: str,
    kind: str,
    target: dict[str, int | None],
    lock: Callable[[], T],
    act: Callable[[T], ReviewAction],
) -> ReviewAction:
    """Lock the decision's object (``lock``), then make the decision (``act``: change it and write
    the action) unless an action with ``key`` exists; that action is then the answer. Two posts of
    one key at once: the second waits for the lock, then finds the first's action (committed by
    then); should it get past, the database's unique key stops it and it answers the same.
    ``target`` names the action's object (``{"assignment_id": 3}``): a key used on another object
    or for another kind of decision is refused."""
    key = _request_key(key)
    try:
        with transaction.atomic():
            locked = lock()
            earlier = _earlier(tenant, key)
            if earlier is None:
                return act(locked)
    except IntegrityError:
        earlier = _earlier(tenant, key)
        if earlier is None:
            raise
    if earlier.kind != kind or any(getattr(earlier, name) != value for name, value in target.items()):
        raise ValidationError("This form has already been used for another decision: reload the page.")
    return earlier


def _delivery(assignment: CrowdAssignment | None) -> str:
    """MTurk assignments wait for the sync job to tell MTurk; other providers need no call."""
    if assignment is not None and assignment.batch.provider == Provider.MTURK and assignment.assignment_id:
        return ReviewAction.Delivery.PENDING
    return ReviewAction.Delivery.NONE


def _locked_assignment(assignment: CrowdAssignment) -> CrowdAssignment:
    return (
        CrowdAssignment.objects.select_for_update(of=("self",))
        .select_related("batch__project", "worker")
        .get(pk=assignment.pk)
    )


def _locked_worker(worker: CrowdWorker) -> CrowdWorker:
    return CrowdWorker.objects.select_for_update().get(pk=worker.pk)


# --- crowd answers ---------------------------------------------------------------------------
def assignment_review(
    *, tenant: Tenant, assignment: CrowdAssignment, approve: bool, reason: str, actor: Any, request_key: str
) -> ReviewAction:
    """Approve or reject (with a reason) a submitted crowd answer."""
    _require_reviewer(tenant)
    _ours(tenant, assignment.batch.project.organization_id, "assignment")
    reason = _reason(reason, required=not approve)
    kind = ReviewAction.Kind.APPROVE if approve else ReviewAction.Kind.REJECT

    def act(current: CrowdAssignment) -> ReviewAction:
        if current.state not in REVIEWABLE:
            raise ValidationError(f"This answer is already {current.get_state_display().lower()}.", code="state")
        current.state = CrowdAssignment.State.APPROVED if approve else CrowdAssignment.State.REJECTED
        current.reviewed_by, current.reviewed_at, current.review_reason = actor, timezone.now(), reason
        current.save(update_fields=["state", "reviewed_by", "reviewed_at", "review_reason"])
        return ReviewAction.objects.create(
            organization=tenant.org,
            kind=kind,
            actor=actor,
            assignment=current,
            worker=current.worker,
            reason=reason,
            request_key=request_key,
            delivery=_delivery(current),
        )

    return _once(
        tenant, request_key, kind, {"assignment_id": assignment.pk}, lambda: _locked_assignment(assignment), act
    )


def _bonus_assignment(worker: CrowdWorker, assignment: CrowdAssignment | None) -> CrowdAssignment | None:
    if assignment is not None:
        if assignment.state not in BONUSABLE:
            raise ValidationError("A bonus goes with an answer the worker has submitted.", code="state")
        return assignment
    if worker.provider == Provider.MTURK:
        raise ValidationError("Mechanical Turk pays a bonus on one of the worker's assignments: choose the answer.")
    return None


def bonus_pay(
    *,
    tenant: Tenant,
    assignment: CrowdAssignment | None = None,
    worker: CrowdWorker | None = None,
    amount_cents: int,
    reason: str,
    actor: Any,
    request_key: str,
) -> ReviewAction:
    """Record a bonus for a worker, on one of their answers (required for Mechanical Turk)."""
    _require_reviewer(tenant)
    if (assignment is None) == (worker is None):
        raise ValueError("Give the answer or the worker the bonus is for, not both.")
    if assignment is not None:
        _ours(tenant, assignment.batch.project.organization_id, "assignment")
        worker = assignment.worker
    else:
        _ours(tenant, worker.organization_id, "worker")
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or not 1 <= amount_cents <= BONUS_MAX_CENTS:
        raise ValidationError({"amount": f"A bonus is between 1 cent and {BONUS_MAX_CENTS // 100} dollars."})
    reason = _reason(reason, required=True, what="A bonus")

    def lock() -> CrowdAssignment | CrowdWorker:
        return _locked_assignment(assignment) if assignment is not None else _locked_worker(worker)

    def act(locked: CrowdAssignment | CrowdWorker) -> ReviewAction:
        target = _bonus_assignment(worker, locked if isinstance(locked, CrowdAssignment) else None)
        return ReviewAction.objects.create(
            organization=tenant.org,
            kind=ReviewAction.Kind.BONUS,
            actor=actor,
            assignment=target,
            worker=worker,
            reason=reason,
            amount_cents=amount_cents,
            request_key=request_key,
            delivery=_delivery(target),
        )

    target = {"assignment_id": assignment.pk} if assignment is not None else {"worker_id": worker.pk}
    return _once(tenant, request_key, ReviewAction.Kind.BONUS, target, lock, act)


# --- crowd workers ---------------------------------------------------------------------------
def _worker_set_blocked(
    *, tenant: Tenant, worker: CrowdWorker, blocked: bool, reason: str, actor: Any, request_key: str
) -> ReviewAction:
    _require_reviewer(tenant)
    _ours(tenant, worker.organization_id, "worker")
    reason = _reason(reason, required=blocked, what="A block")
    kind = ReviewAction.Kind.BLOCK if blocked else ReviewAction.Kind.UNBLOCK

    def act(current: CrowdWorker) -> ReviewAction:
        if current.blocked == blocked:
            raise ValidationError(f"This worker is already {'blocked' if blocked else 'allowed to work'}.")
        current.blocked, current.block_reason = blocked, reason if blocked else ""
        current.save(update_fields=["blocked", "block_reason"])
        return ReviewAction.objects.create(
            organization=tenant.org, kind=kind, actor=actor, worker=current, reason=reason, request_key=request_key
        )

    return _once(tenant, request_key, kind, {"worker_id": worker.pk}, lambda: _locked_worker(worker), act)


def worker_block(*, tenant: Tenant, worker: CrowdWorker, reason: str, actor: Any, request_key: str) -> ReviewAction:
    """Keep a worker from further work of the organisation (a reason is required)."""
    return _worker_set_blocked(
        tenant=tenant, worker=worker, blocked=True, reason=reason, actor=actor, request_key=request_key
    )


def worker_unblock(*, tenant: Tenant, worker: CrowdWorker, reason: str, actor: Any, request_key: str) -> ReviewAction:
    """Let a blocked worker work again."""
    return _worker_set_blocked(
        tenant=tenant, worker=worker, blocked=False, reason=reason, actor=actor, request_key=request_key
    )


# --- members' tasks --------------------------------------------------------------------------
def task_review_with_reason(
    *, tenant: Tenant, task: Task, accept: bool, reason: str, actor: Any, request_key: str
) -> ReviewAction:
    """Accept or reject (with a reason, shown in the annotator's task list) a submitted task."""
    _require_reviewer(tenant)
    _ours(tenant, task.project.organization_id, "task")
    reason = _reason(reason, required=not accept)
    kind = ReviewAction.Kind.APPROVE if accept else ReviewAction.Kind.REJECT

    def lock() -> Task:
        return Task.objects.select_for_update(of=("self",)).select_related("project").get(pk=task.pk)

    def act(current: Task) -> ReviewAction:
        task_review(tenant=tenant, task=current, accept=accept, actor=actor, note=reason)
        return ReviewAction.objects.create(
            organization=tenant.org, kind=kind, actor=actor, task=current, reason=reason, request_key=request_key
        )

    return _once(tenant, request_key, kind, {"task_id": task.pk}, lock, act)


# --- aggregated results ----------------------------------------------------------------------
def result_review(*, tenant: Tenant, result: CrowdResult, answer: str, actor: Any) -> CrowdResult:
    """Settle a result: the reviewer's answer (one of the question's choices) replaces the
    aggregated one and is written where exports read it. Mask results are settled as they are
    (``answer`` empty); a mask is fixed in the studio."""
    _require_reviewer(tenant)
    batch = result.batch
    _ours(tenant, batch.project.organization_id, "result")
    answer = (answer or "").strip()
    if batch.kind == TaskKind.CLASSIFY and answer not in batch.question.choices:
        raise ValidationError({"answer": "Choose one of the question's answers."})
    if batch.kind == TaskKind.MASK and answer:
        raise ValidationError({"answer": "A mask result is fixed in the studio, not answered."})
    with transaction.atomic():
        current = CrowdResult.objects.select_for_update(of=("self",)).get(pk=result.pk)
        if batch.kind == TaskKind.CLASSIFY:
            current.answer = answer
        current.reviewed_by, current.reviewed_at = actor, timezone.now()
        current.save(update_fields=["answer", "reviewed_by", "reviewed_at", "updated_at"])
        results_write(batch, [current])
    return current
