"""The real worker: ``manage.py db_worker`` in its own process runs queued jobs against the test
database. The SQLite test database lives in this process's memory, out of a worker's reach: the
PostgreSQL pass runs this (``make demo`` runs the worker on SQLite)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connection
from django_tasks_db.models import DBTaskResult

from platform_core.jobs import job_start
from platform_core.models import Job
from tests.platform_core import job_kinds  # noqa: F401 - registers the test job kinds

ROOT = Path(__file__).resolve().parents[2]

# The worker process registers the test job kinds, then runs every queued task and exits.
WORKER = (
    "import django; django.setup(); import tests.platform_core.job_kinds; "
    "from django.core.management import call_command; "
    "call_command('db_worker', '--batch', '--no-reload', '--no-startup-delay', '--queue-name', '*')"
)


def _database_url() -> str:
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_it_runs_queued_jobs_in_a_db_worker_process(world: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the SQLite test database is in memory; the PostgreSQL pass runs the worker")
    good = job_start(organization=world.demo.org, kind="test_steps", params={"n": 4}, created_by=world.manager)
    bad = job_start(organization=world.demo.org, kind="test_steps", params={"fail_at": 1}, created_by=world.manager)
    assert DBTaskResult.objects.count() == 2  # committed and queued: no transaction holds them back

    env = {**os.environ, "DATABASE_URL": _database_url(), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run(  # noqa: S603 - our own interpreter and a fixed script
        [sys.executable, "-c", WORKER], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr

    good.refresh_from_db()
    bad.refresh_from_db()
    assert (good.state, good.progress_done, good.progress_total, good.attempts) == (Job.State.SUCCEEDED, 4, 4, 1)
    assert good.report["counted"] == 4
    assert (bad.state, bad.message) == (Job.State.FAILED, "step 1 is broken")
    # The Tasks API's own record: both tasks ran to the end (a failed job is a task that finished).
    assert set(DBTaskResult.objects.values_list("status", flat=True)) == {"SUCCESSFUL"}
    assert all(result.worker_ids for result in DBTaskResult.objects.all())
