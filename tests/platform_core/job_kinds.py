"""Job kinds for the job tests, registered on import (also by the worker subprocess test).

``test_steps`` counts ``n`` steps with progress; its params make it fail, cancel itself, stop the
worker or wait at a given step, or deliver its own task again, so one runner drives every
lifecycle case.
"""

from __future__ import annotations

import time

from platform_core.jobs import JobProgress, job_runner
from platform_core.models import Job

RUNS: list[tuple[int, int]] = []  # (job id, attempt) of every run that reached the runner


@job_runner("test_steps", label="Test steps")
def run_steps(job: Job, progress: JobProgress) -> dict:
    from platform_core.jobs.core import run_job
    from platform_core.jobs.services import job_cancel

    RUNS.append((job.pk, job.attempts))
    params = job.params
    n = int(params.get("n", 3))
    if job.attempts < int(params.get("fail_before_attempt", 0)):
        raise ValueError(f"attempt {job.attempts} was told to fail")
    if params.get("deliver_again"):
        run_job.call(job.pk)  # the same task delivered a second time while this run holds the job
    for i in range(n):
        if params.get("exit_at") == i:
            raise SystemExit(1)
        if params.get("fail_at") == i:
            raise ValueError(f"step {i} is broken")
        if params.get("cancel_at") == i:
            job_cancel(job=Job.objects.get(pk=job.pk), actor=None)
        if params.get("sleep"):
            time.sleep(float(params["sleep"]))
        progress.update(done=i + 1, total=n, message=f"step {i + 1} done")
    return {"counted": n, "skipped": [{"name": "notes.txt", "reason": "not an image"}]}
