"""The job worker beside the daphne of a browser test: ``manage.py db_worker`` on every queue, as
``make demo`` starts it, with the environment ``daphne_server`` gives daphne (the test's database,
data folder, secret and channel layer), so the jobs a page starts run as they do in production."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.browser.conftest import ROOT

STOP_SECONDS = 20


@contextmanager
def db_worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """``manage.py db_worker --queue-name '*'`` with ``env``, its output in ``log``; stopped after
    (SIGTERM lets it finish the job it is on; killed if it has not within STOP_SECONDS)."""
    command = [sys.executable, "manage.py", "db_worker", "--queue-name", "*", "--no-reload", "--no-startup-delay"]
    with log.open("wb") as output:
        worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
