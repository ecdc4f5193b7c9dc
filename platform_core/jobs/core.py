"""Job records, the runner registry and the one Tasks API task that runs every job."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules
from django_tasks import task

from platform_core.models import Job
from platform_core.realtime import org_group, publish_after_commit

logger = logging.getLogger(__name__)

Runner = Callable[[Job, "JobProgress"], dict | None]
RUNNERS: dict[str, Runner] = {}
RUNNER_QUEUES: dict[str, str] = {}
RUNNER_LABELS: dict[str, str] = {}

ACTIVE_STATES = (Job.State.QUEUED, Job.State.RUNNING)
MESSAGE_MAX = 2000


class JobCancelled(Exception):
    """Raised by ``JobProgress.update`` when the job was cancelled, or handed to a newer run, since
    the runner started. The core catches it: the runner only has to let it propagate."""


def job_runner(kind: str, *, queue: str = "default", label: str | None = None) -> Callable[[Runner], Runner]:
    """Register the function that does the work of jobs of ``kind``, run on worker ``queue``
    (``gpu`` for work that needs a GPU host); ``label`` is what pages call the kind."""
    queues = settings.TASKS["default"].get("QUEUES") or ["default"]
    if queue not in queues:
        raise ValueError(f"Queue {queue!r} is not one of the configured queues {queues}.")

    def register(func: Runner) -> Runner:
        RUNNERS[kind] = func
        RUNNER_QUEUES[kind] = queue
        RUNNER_LABELS[kind] = label or kind.replace("_", " ").capitalize()
        return func

    return register


def _runner_for(kind: str) -> Runner | None:
    if kind not in RUNNERS:
        # A worker process imports only what its tasks name: runners live in each app's ``jobs``
        # module (or one it imports), found here the first time a kind is asked for.
        autodiscover_modules("jobs")
    return RUNNERS.get(kind)


def job_kind_label(kind: str) -> str:
    return RUNNER_LABELS.get(kind) or kind.replace("_", " ").capitalize()


# --- staleness ---------------------------------------------------------------------------------


def stale_cutoff(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(seconds=settings.JOB_STALE_SECONDS)


def stalled_q(now: datetime | None = None) -> Q:
    """Running jobs whose worker has not reported for JOB_STALE_SECONDS: it most likely died."""
    cutoff = stale_cutoff(now)
    return Q(state=Job.State.RUNNING) & (
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )


def job_is_stalled(job: Job, now: datetime | None = None) -> bool:
    if job.state != Job.State.RUNNING:
        return False
    last = job.heartbeat_at or job.started_at
    return last is not None and last < stale_cutoff(now)


def job_display_state(job: Job) -> str:
    return "stalled" if job_is_stalled(job) else job.state


# --- events ------------------------------------------------------------------------------------


def job_event(job: Job) -> dict[str, Any]:
    """The ``job.progress`` event for the organisation group. ``created_by_id`` stays on the
    server: the consumer uses it to decide who sees the job and forwards only ``job``."""
    return {
        "type": "job.progress",
        "created_by_id": job.created_by_id,
        "job": {
            "id": job.pk,
            "kind": job.kind,
            "state": job.state,
            "display_state": job_display_state(job),
            "state_label": "Stalled" if job_is_stalled(job) else job.get_state_display(),
            "done": job.progress_done,
            "total": job.progress_total,
            "percent": job.percent,
            "message": job.message,
            "finished": job.finished,
        },
    }


def job_publish(job: Job) -> None:
    publish_after_commit(org_group(job.organization_id), job_event(job))


# --- progress ----------------------------------------------------------------------------------


class JobProgress:
    """Handed to a runner: records how far the job is, pushes it to the pages, and stops a job
    that was cancelled.

    Updates are throttled to one database write and one push every ``interval`` seconds; the
    last one (``done >= total``) always goes through. Every write is also the job's heartbeat.
    Call ``update`` outside ``transaction.atomic`` blocks, or nobody sees it until they commit.
    """

    interval = 0.25

    def __init__(self, job: Job, *, attempt: int | None = None) -> None:
        self.job = job
        # The run this progress belongs to: a retry starts a newer one, which supersedes this.
        self.attempt = attempt
        self._flushed_at = float("-inf")

    def update(self, *, done: int, total: int | None = None, message: str | None = None) -> None:
        job = self.job
        job.progress_done = max(0, int(done))
        if total is not None:
            job.progress_total = max(0, int(total))
        if message is not None:
            job.message = str(message)[:MESSAGE_MAX]
        now = time.monotonic()
        last = bool(job.progress_total) and job.progress_done >= job.progress_total
        if not last and now - self._flushed_at < self.interval:
            return
        self._flushed_at = now
        self.flush()

    def flush(self) -> None:
        """Write the progress now; raises JobCancelled when this run no longer owns the job."""
        job = self.job
        job.heartbeat_at = timezone.now()
        if self.attempt is not None:
            current = Job.objects.filter(pk=job.pk, state=Job.State.RUNNING, attempts=self.attempt)
        else:
            # A runner driven by hand (not through run_job): only cancellation stops it.
            current = Job.objects.filter(pk=job.pk, state__in=ACTIVE_STATES)
        updated = current.update(
            progress_done=job.progress_done,
            progress_total=job.progress_total,
            message=job.message,
            heartbeat_at=job.heartbeat_at,
        )
        if not updated:
            raise JobCancelled(f"Job {job.pk} was cancelled or taken over by a newer run.")
        job_publish(job)


# --- starting and running ----------------------------------------------------------------------


def job_manager_tenant(job: Job) -> Any:
    """The tenant of the member who started ``job``, for a runner that acts as them: they must still
    be in the organisation and manage it (ValueError otherwise, which fails the job with that reason)."""
    from django.http import Http404

    from platform_core.tenancy import resolve_tenant

    try:
        tenant = resolve_tenant(job.created_by, job.organization.slug)
    except Http404:
        raise ValueError("The member who started this job is no longer in the organisation.") from None
    if not tenant.can_manage:
        raise ValueError("The member who started this job is no longer a manager or owner of the organisation.")
    return tenant


def job_start(
    *, organization: Any, kind: str, params: dict | None = None, created_by: Any = None, project: Any = None
) -> Job:
    """Record a job and queue it once the surrounding transaction commits."""
    if _runner_for(kind) is None:
        raise ValueError(f"No runner for jobs of kind {kind!r}.")
    job = Job.objects.create(
        organization=organization, project=project, kind=kind, params=params or {}, created_by=created_by
    )
    job_publish(job)
    transaction.on_commit(lambda: job_enqueue(job))
    return job


def job_enqueue(job: Job) -> None:
    """Hand a queued job to the Tasks API. A backend that refuses it fails the job with the reason
    instead of leaving it queued for ever."""
    try:
        result = run_job.using(queue_name=RUNNER_QUEUES.get(job.kind, "default")).enqueue(job.pk)
    except Exception as exc:
        logger.exception("Could not queue job %s", job.pk)
        _finish(job, attempt=None, state=Job.State.FAILED, message=f"Could not queue the job: {exc}")
        return
    Job.objects.filter(pk=job.pk).update(task_result_id=str(result.id)[:64])


@task()
def run_job(job_id: int) -> None:
    """Run one job. Safe to deliver twice: only the run that moves the job from queued to running
    does the work; a second delivery, or one for a cancelled job, does nothing."""
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, state=Job.State.QUEUED).update(
        state=Job.State.RUNNING, started_at=now, heartbeat_at=now, finished_at=None, attempts=F("attempts") + 1
    )
    if not claimed:
        logger.info("Job %s is not queued (cancelled, finished or already running): skipped", job_id)
        return
    job = Job.objects.get(pk=job_id)
    attempt = job.attempts
    job_publish(job)
    runner = _runner_for(job.kind)
    if runner is None:
        _finish(job, attempt=attempt, state=Job.State.FAILED, message=f"No runner for jobs of kind {job.kind!r}.")
        return
    try:
        report = runner(job, JobProgress(job, attempt=attempt))
    except JobCancelled:
        logger.info("Job %s stopped: cancelled or superseded", job_id)
    except (KeyboardInterrupt, SystemExit):
        # The worker was told to stop at once: say so now rather than wait for the job to go stale.
        _finish(job, attempt=attempt, state=Job.State.FAILED, message="The worker stopped during this job; retry it.")
        raise
    except Exception as exc:
        logger.exception("Job %s (%s) failed", job_id, job.kind)
        _finish(job, attempt=attempt, state=Job.State.FAILED, message=str(exc)[:MESSAGE_MAX] or type(exc).__name__)
    else:
        _finish(job, attempt=attempt, state=Job.State.SUCCEEDED, report=report or {})


def _finish(
    job: Job, *, attempt: int | None, state: str, message: str | None = None, report: dict | None = None
) -> None:
    """Record how the run ended, unless it no longer owns the job (cancelled meanwhile)."""
    if report is not None:
        try:
            json.dumps(report)
        except (TypeError, ValueError) as exc:
            state, message, report = Job.State.FAILED, f"The job's report could not be stored: {exc}", {}
    fields: dict[str, Any] = {
        "state": state,
        "finished_at": timezone.now(),
        # The last throttled progress may not have been written yet.
        "progress_done": job.progress_done,
        "progress_total": job.progress_total,
        "result_file": job.result_file.name or "",
        "message": job.message if message is None else message,
    }
    if report is not None:
        fields["report"] = report
    current = Job.objects.filter(pk=job.pk, state__in=ACTIVE_STATES)
    if attempt is not None:
        current = current.filter(attempts=attempt)
    if current.update(**fields):
        job.refresh_from_db()
        job_publish(job)
