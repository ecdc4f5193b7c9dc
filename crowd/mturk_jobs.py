"""Mechanical Turk work as background jobs, recorded like every other job (``platform_core.jobs``):
publishing a batch's HITs (``mturk_publish_batch``), syncing a batch with MTurk
(``mturk_sync_batch``) and granting a worker's qualification score (``mturk_grant_qualification``).

Each job names its batch or qualification attempt by id in its parameters and belongs to that
batch's organisation; the runner looks the row up through that organisation only, so a job that
names another organisation's row fails without calling MTurk. A failed MTurk call fails the job
with MTurk's message; everything done before it stays recorded, and a retry carries on from there
(the operations in ``crowd.mturk_ops`` are safe to run again). A sync records failures on the
decisions it could not deliver and in its report, and still succeeds: the next sync retries them.

Who runs them: publishing spends the organisation's money, so it is started by a manager or owner
and runs only while they still are one; a sync is started by a reviewer or above (it sends the
decisions reviewers made), or by the platform itself; a score is granted for the worker's
attempt, started by the platform when the test is submitted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from crowd.models import CrowdBatch, Provider, QualificationAttempt
from crowd.mturk import MTurkClient
from crowd.mturk_ops import counted, grant_qualification, is_mturk_attempt, publish_batch, publish_check, sync_batch
from platform_core.jobs import JobProgress, job_manager_tenant, job_runner, job_start
from platform_core.models import Job, Role
from platform_core.tenancy import Tenant, resolve_tenant

PUBLISH = "mturk_publish_batch"
SYNC = "mturk_sync_batch"
GRANT = "mturk_grant_qualification"

# Where the jobs (and ``manage.py crowd_sync``) get their requester client: one made from the
# settings. Tests put one here whose calls botocore's Stubber answers.
client_factory: Callable[[], MTurkClient] = MTurkClient.from_settings


def mturk_client() -> MTurkClient:
    return client_factory()


# --- starting -------------------------------------------------------------------------------
def _check_batch(tenant: Tenant, batch: CrowdBatch) -> None:
    if batch.project.organization_id != tenant.org.pk:
        raise Http404("No such crowd batch.")
    if batch.provider != Provider.MTURK:
        raise ValidationError("This batch does not run on Mechanical Turk.")


def mturk_publish_start(*, tenant: Tenant, batch: CrowdBatch, actor: Any) -> Job:
    """Start publishing ``batch`` (fetched through the tenancy door) on MTurk; owners and managers
    only. ValidationError at once for a batch that cannot be published."""
    _check_batch(tenant, batch)
    if not tenant.can_manage:
        raise PermissionDenied("Only managers and owners publish HITs: they spend the organisation's money.")
    publish_check(batch)
    return job_start(
        organization=tenant.org, kind=PUBLISH, params={"batch_id": batch.pk}, created_by=actor, project=batch.project
    )


def mturk_sync_start(*, tenant: Tenant, batch: CrowdBatch, actor: Any) -> Job:
    """Start syncing ``batch`` (fetched through the tenancy door) with MTurk; reviewers and above."""
    _check_batch(tenant, batch)
    if not tenant.has_role(Role.REVIEWER):
        raise PermissionDenied("Only reviewers, managers and owners sync batches with Mechanical Turk.")
    return job_start(
        organization=tenant.org, kind=SYNC, params={"batch_id": batch.pk}, created_by=actor, project=batch.project
    )


def enqueue_qualification_score(attempt: QualificationAttempt) -> Job | None:
    """Queue the job that gives an MTurk worker their score, once the surrounding transaction
    commits (the job's row is part of it); None for a worker who did not come through MTurk or an
    unfinished attempt. Asking twice for the same attempt gives the first job back."""
    if attempt.finished_at is None or not is_mturk_attempt(attempt):
        return None
    project = attempt.test.project
    earlier = (
        Job.objects.for_org(project.organization)
        .filter(kind=GRANT, params__attempt_id=attempt.pk)
        .exclude(state__in=(Job.State.FAILED, Job.State.CANCELLED))
        .first()
    )
    if earlier is not None:
        return earlier
    return job_start(organization=project.organization, kind=GRANT, params={"attempt_id": attempt.pk}, project=project)


# --- running --------------------------------------------------------------------------------
def _job_batch(job: Job) -> CrowdBatch:
    try:
        # The job's own organisation scopes the lookup: a job names no other tenant's batch.
        return (
            CrowdBatch.objects.for_org(job.organization)
            .select_related("project__organization", "question", "label")
            .get(pk=job.params.get("batch_id"), provider=Provider.MTURK)
        )
    except (CrowdBatch.DoesNotExist, ValueError, TypeError):
        raise ValueError("The job names no Mechanical Turk batch of its organisation.") from None


def _reviewer_still(job: Job) -> None:
    """A sync started by a member runs only while they are still a reviewer or above."""
    if job.created_by_id is None:
        return
    try:
        tenant = resolve_tenant(job.created_by, job.organization.slug)
    except Http404:
        raise ValueError("The member who started this job is no longer in the organisation.") from None
    if not tenant.has_role(Role.REVIEWER):
        raise ValueError("The member who started this job is no longer a reviewer of the organisation.")


def _reporter(progress: JobProgress) -> Callable[[int, int, str], None]:
    def report(done: int, total: int, message: str) -> None:
        progress.update(done=done, total=total, message=message)

    return report


@job_runner(PUBLISH, label="MTurk: publish HITs")
def run_mturk_publish(job: Job, progress: JobProgress) -> dict[str, Any]:
    job_manager_tenant(job)
    batch = _job_batch(job)
    try:
        report = publish_batch(batch, mturk_client(), progress=_reporter(progress))
    except ValidationError as exc:
        raise ValueError(" ".join(exc.messages)) from None
    progress.update(
        done=report.created,
        total=report.created,
        message=f"{counted(report.created, 'HIT')} created; the batch has {counted(report.hits, 'HIT')} "
        f"for {counted(report.units, 'unit')}.",
    )
    return report.as_dict()


@job_runner(SYNC, label="MTurk: sync")
def run_mturk_sync(job: Job, progress: JobProgress) -> dict[str, Any]:
    _reviewer_still(job)
    batch = _job_batch(job)
    report = sync_batch(batch, mturk_client(), progress=_reporter(progress))
    steps = report.hits + len(report.delivered) + len(report.failed)
    progress.update(done=steps, total=steps, message=report.summary())
    return report.as_dict()


@job_runner(GRANT, label="MTurk: qualification score")
def run_mturk_grant(job: Job, progress: JobProgress) -> dict[str, Any]:
    try:
        attempt = (
            QualificationAttempt.objects.for_org(job.organization)
            .select_related("worker", "test__project__organization")
            .get(pk=job.params.get("attempt_id"))
        )
    except (QualificationAttempt.DoesNotExist, ValueError, TypeError):
        raise ValueError("The job names no qualification attempt of its organisation.") from None
    try:
        result = grant_qualification(attempt, mturk_client())
    except ValidationError as exc:
        raise ValueError(" ".join(exc.messages)) from None
    message = result.get("skipped") or f"Score {result['score']} granted to worker {result['worker_id']}."
    progress.update(done=1, total=1, message=message)
    return result
