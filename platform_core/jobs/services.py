"""State changes people make to jobs: cancel and retry. Callers check who may (see
``selectors.job_may_control``); these check that the job is in a state that allows it."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from platform_core.jobs.core import ACTIVE_STATES, job_enqueue, job_is_stalled, job_publish, stalled_q
from platform_core.models import Job

logger = logging.getLogger(__name__)

RETRYABLE_STATES = (Job.State.FAILED, Job.State.CANCELLED)


def job_may_retry(job: Job) -> bool:
    return job.state in RETRYABLE_STATES or job_is_stalled(job)


def job_may_cancel(job: Job) -> bool:
    return job.state in ACTIVE_STATES


@transaction.atomic
def job_cancel(*, job: Job, actor: Any) -> Job:
    """Cancel a queued or running job. A queued job never starts; a running one stops at its next
    progress update (its runner sees JobCancelled)."""
    updated = Job.objects.filter(pk=job.pk, state__in=ACTIVE_STATES).update(
        state=Job.State.CANCELLED,
        finished_at=timezone.now(),
        message=f"Cancelled by {actor.get_username()}." if actor is not None else "Cancelled.",
    )
    if not updated:
        raise ValidationError("Only a queued or running job can be cancelled.")
    job.refresh_from_db()
    job_publish(job)
    return job


@transaction.atomic
def job_retry(*, job: Job, actor: Any) -> Job:
    """Queue a failed, cancelled or stalled job again: the same row, run from the start by a new
    attempt (``attempts`` counts the runs started). Runners are idempotent, so work the earlier run
    finished is found done, not repeated. A stalled run that wakes up finds itself superseded."""
    retryable = Job.objects.filter(pk=job.pk).filter(
        # The state is checked in the UPDATE itself: two people pressing Retry queue one run.
        stalled_q() | Q(state__in=RETRYABLE_STATES)
    )
    updated = retryable.update(
        state=Job.State.QUEUED,
        progress_done=0,
        message="",
        report={},
        started_at=None,
        finished_at=None,
        heartbeat_at=None,
        task_result_id="",
    )
    if not updated:
        raise ValidationError("Only a failed, cancelled or stalled job can be retried.")
    logger.info("Job %s retried by %s", job.pk, actor)
    job.refresh_from_db()
    job_publish(job)
    transaction.on_commit(lambda: job_enqueue(job))
    return job
