"""Tasks (CVAT's "jobs"): shares of a project's items given to annotators, "My tasks", and moving
through a task's items. Not to be confused with background jobs (platform_core.jobs)."""
