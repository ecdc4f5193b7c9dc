"""Background jobs: one mechanism for every long piece of work.

A job is a tenant-scoped ``Job`` row plus one run of the Tasks API (django-tasks, the backport of
Django 6's ``django.tasks``; the database backend's worker is ``manage.py db_worker``). Code that
needs a job registers a runner for its kind and starts it with ``job_start``::

    @job_runner("import_media")                      # queue="gpu" for work that needs a GPU host
    def run_import(job: Job, progress: JobProgress) -> dict:
        for i, path in enumerate(paths):
            ...
            progress.update(done=i + 1, total=len(paths), message=f"{path.name} imported")
        return {"imported": n, "skipped": [{"name": ..., "reason": ...}]}   # kept as job.report

    job = job_start(organization=org, kind="import_media", params={...}, created_by=user, project=project)

The runner's return value becomes ``job.report`` (JSON; lists of objects show as tables on the job
page); an exception fails the job with its message as the reason shown to people. A result file
is attached with ``job.result_file.save(name, content, save=False)``; the core stores it when the
run ends.

Where runners live: in each app's ``jobs`` module (``annotation/jobs.py``), or a module it imports.
A worker process imports the apps' ``jobs`` modules the first time it meets a kind it does not know.

Progress is pushed: ``progress.update`` writes at most four times a second (the last update always),
each write is the job's heartbeat and sends a ``job.progress`` event to the organisation group after
commit (``platform_core.realtime``); ``/ws/o/<org>/jobs/`` forwards it to the pages. A worker
reaches the web processes' sockets only through a shared (Redis) channel layer; with the in-memory
layer of the embedded default the pages fetch the state again while a job of theirs is active.

Robustness, and what it asks of runners:

- **Runners must be idempotent.** A retry runs the same ``Job`` row again from the start (with the
  same ``params``), after a failure, a cancellation or a worker that died; work the earlier run
  finished must be found done (or done again harmlessly), never duplicated.
- A running job whose heartbeat is older than ``settings.JOB_STALE_SECONDS`` is shown as
  *stalled* (its worker most likely died) and may be retried. Runners report progress more often
  than that; a stalled run that wakes up after a retry finds itself superseded and stops.
- Cancelling sets the state at once; a running job stops at its next progress write, where
  ``progress.update`` raises ``JobCancelled`` (let it propagate; the core catches it).
- ``run_job`` is safe against being delivered twice: a conditional UPDATE moves the job from
  queued to running, so only one delivery runs it. ``attempts`` counts the runs started.
"""

from __future__ import annotations

from platform_core.jobs.core import JobCancelled, JobProgress, job_manager_tenant, job_runner, job_start

__all__ = ["JobCancelled", "JobProgress", "job_manager_tenant", "job_runner", "job_start"]
