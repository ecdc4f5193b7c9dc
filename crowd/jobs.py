"""The crowd app's job runners, registered on import (the jobs core imports each app's ``jobs``
module the first time a worker meets a kind it does not know)."""

from __future__ import annotations

from crowd import mturk_jobs  # noqa: F401 - registers the "mturk_*" jobs
