"""The job lifecycle through the real Tasks API database backend: queued → running → succeeded /
failed / cancelled, retry on the same row, duplicate delivery, stale heartbeats. The worker's part
is played by ``run_job.call`` (what ``db_worker`` calls); test_jobs_worker.py runs the real worker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from platform_core.jobs import JobCancelled, JobProgress, job_start
from platform_core.jobs.core import job_display_state, job_is_stalled, run_job, stalled_q
from platform_core.jobs.services import job_cancel, job_retry
from platform_core.models import Job
from tests.platform_core import job_kinds


@pytest.fixture(autouse=True)
def runs() -> Iterator[list[tuple[int, int]]]:
    job_kinds.RUNS.clear()
    yield job_kinds.RUNS
    job_kinds.RUNS.clear()


def start(world: Any, capture: Any, user: Any = None, **params: Any) -> Job:
    with capture(execute=True):
        job = job_start(
            organization=world.demo.org,
            project=world.demo.project,
            kind="test_steps",
            params=params,
            created_by=user or world.manager,
        )
    job.refresh_from_db()
    return job


def test_it_queues_the_job_through_the_tasks_api_after_commit(
    world: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = job_start(organization=world.demo.org, kind="test_steps", created_by=world.manager)
        # Nothing is queued before the transaction that recorded the job commits.
        assert not DBTaskResult.objects.exists()
    for callback in callbacks:
        callback()
    job.refresh_from_db()
    task = DBTaskResult.objects.get()
    assert str(task.id) == job.task_result_id
    assert task.task_path == "platform_core.jobs.core.run_job"
    assert task.args_kwargs == {"args": [job.pk], "kwargs": {}}
    assert task.queue_name == "default"
    assert job.state == Job.State.QUEUED


def test_it_refuses_a_kind_without_a_runner(world: Any) -> None:
    with pytest.raises(ValueError, match="No runner"):
        job_start(organization=world.demo.org, kind="no_such_kind", created_by=world.manager)
    assert not Job.objects.filter(kind="no_such_kind").exists()


def test_it_runs_a_job_to_success_with_its_progress_and_report(
    world: Any, django_capture_on_commit_callbacks: Any, runs: list
) -> None:
    job = start(world, django_capture_on_commit_callbacks, n=3)
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED
    assert (job.progress_done, job.progress_total, job.percent) == (3, 3, 100)
    assert job.message == "step 3 done"
    assert job.report == {"counted": 3, "skipped": [{"name": "notes.txt", "reason": "not an image"}]}
    assert job.attempts == 1
    assert job.started_at <= job.heartbeat_at <= job.finished_at
    assert runs == [(job.pk, 1)]


def test_it_records_the_reason_a_job_failed(world: Any, django_capture_on_commit_callbacks: Any) -> None:
    job = start(world, django_capture_on_commit_callbacks, n=3, fail_at=1)
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert job.message == "step 1 is broken"
    assert job.progress_done == 1
    assert job.finished_at is not None


def test_it_stops_a_running_job_cancelled_at_its_next_progress_update(
    world: Any, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch, runs: list
) -> None:
    monkeypatch.setattr(JobProgress, "interval", 0)
    job = start(world, django_capture_on_commit_callbacks, n=5, cancel_at=2)
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.CANCELLED
    assert job.progress_done == 2  # steps 1 and 2 reported; the update after the cancel raised
    assert job.message == "Cancelled."
    assert runs == [(job.pk, 1)]


def test_it_never_starts_a_job_cancelled_while_queued(
    world: Any, django_capture_on_commit_callbacks: Any, runs: list
) -> None:
    job = start(world, django_capture_on_commit_callbacks)
    job_cancel(job=job, actor=world.manager)
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.CANCELLED
    assert job.message == "Cancelled by manager."
    assert job.attempts == 0
    assert runs == []


@pytest.mark.parametrize("when", ["after", "during"])
def test_it_runs_a_job_delivered_twice_only_once(
    world: Any, django_capture_on_commit_callbacks: Any, runs: list, when: str
) -> None:
    job = start(world, django_capture_on_commit_callbacks, deliver_again=(when == "during"))
    run_job.call(job.pk)
    if when == "after":
        run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED
    assert job.attempts == 1
    assert runs == [(job.pk, 1)]


def test_it_retries_a_failed_job_on_the_same_row(
    world: Any, django_capture_on_commit_callbacks: Any, runs: list
) -> None:
    job = start(world, django_capture_on_commit_callbacks, fail_before_attempt=2)
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert job.message == "attempt 1 was told to fail"
    first_task = job.task_result_id

    with django_capture_on_commit_callbacks(execute=True):
        job_retry(job=job, actor=world.manager)
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED
    assert (job.message, job.report, job.finished_at) == ("", {}, None)
    assert job.task_result_id and job.task_result_id != first_task
    assert DBTaskResult.objects.count() == 2

    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED
    assert job.attempts == 2
    assert runs == [(job.pk, 1), (job.pk, 2)]
    assert Job.objects.filter(kind="test_steps").count() == 1  # the same row, no new one


@pytest.mark.parametrize("state", [Job.State.QUEUED, Job.State.RUNNING, Job.State.SUCCEEDED])
def test_it_refuses_to_retry_a_job_that_neither_failed_nor_stalled(
    world: Any, django_capture_on_commit_callbacks: Any, state: str
) -> None:
    job = start(world, django_capture_on_commit_callbacks)
    Job.objects.filter(pk=job.pk).update(state=state, heartbeat_at=timezone.now())
    job.refresh_from_db()
    with pytest.raises(ValidationError, match="failed, cancelled or stalled"):
        job_retry(job=job, actor=world.manager)
    job.refresh_from_db()
    assert job.state == state
    assert DBTaskResult.objects.count() == 1


@pytest.mark.parametrize("state", [Job.State.SUCCEEDED, Job.State.FAILED, Job.State.CANCELLED])
def test_it_refuses_to_cancel_a_finished_job(world: Any, state: str) -> None:
    job = world.demo.job
    Job.objects.filter(pk=job.pk).update(state=state, message="as it was")
    with pytest.raises(ValidationError, match="queued or running"):
        job_cancel(job=job, actor=world.manager)
    job.refresh_from_db()
    assert (job.state, job.message) == (state, "as it was")


def test_it_shows_a_running_job_with_a_stale_heartbeat_as_stalled_and_retries_it(
    world: Any, django_capture_on_commit_callbacks: Any, settings: Any, runs: list
) -> None:
    settings.JOB_STALE_SECONDS = 60
    job = start(world, django_capture_on_commit_callbacks)
    # A worker claimed the job, reported once, and died.
    long_ago = timezone.now() - timedelta(seconds=61)
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.RUNNING, attempts=1, started_at=long_ago, heartbeat_at=long_ago
    )
    fresh = start(world, django_capture_on_commit_callbacks)
    Job.objects.filter(pk=fresh.pk).update(state=Job.State.RUNNING, attempts=1, heartbeat_at=timezone.now())
    job.refresh_from_db()
    fresh.refresh_from_db()

    assert job_is_stalled(job) and job_display_state(job) == "stalled"
    assert not job_is_stalled(fresh) and job_display_state(fresh) == "running"
    assert list(Job.objects.filter(stalled_q())) == [job]
    with pytest.raises(ValidationError):
        job_retry(job=fresh, actor=world.manager)

    with django_capture_on_commit_callbacks(execute=True):
        job_retry(job=job, actor=world.manager)
    run_job.call(job.pk)
    job.refresh_from_db()
    assert (job.state, job.attempts) == (Job.State.SUCCEEDED, 2)

    # The first run was not dead after all: it wakes up, finds itself superseded and stops.
    stale_run = JobProgress(Job.objects.get(pk=job.pk), attempt=1)
    with pytest.raises(JobCancelled):
        stale_run.update(done=1, total=3)
    job.refresh_from_db()
    assert (job.state, job.progress_done) == (Job.State.SUCCEEDED, 3)


def test_it_fails_the_job_when_the_worker_is_told_to_stop_during_it(
    world: Any, django_capture_on_commit_callbacks: Any
) -> None:
    job = start(world, django_capture_on_commit_callbacks, exit_at=1)
    with pytest.raises(SystemExit):
        run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert "worker stopped" in job.message


def test_it_throttles_progress_writes_but_always_writes_the_last(
    world: Any, django_capture_on_commit_callbacks: Any, django_assert_max_num_queries: Any
) -> None:
    job = start(world, django_capture_on_commit_callbacks)
    Job.objects.filter(pk=job.pk).update(state=Job.State.RUNNING, attempts=1)
    progress = JobProgress(Job.objects.get(pk=job.pk), attempt=1)
    with django_assert_max_num_queries(3):
        for i in range(200):
            progress.update(done=i + 1, total=200, message=f"item {i + 1}")
    job.refresh_from_db()
    assert (job.progress_done, job.message) == (200, "item 200")


def test_it_stores_result_files_under_the_organisations_key_prefix(world: Any) -> None:
    for side in (world.demo, world.other):
        name = side.job.result_file.name
        assert name.startswith(f"org-{side.org.pk}/jobs/"), name
        assert name.endswith("/report.csv")  # the name chosen by the job is kept for the download
    assert world.demo.job.result_file.name != world.other.job.result_file.name
