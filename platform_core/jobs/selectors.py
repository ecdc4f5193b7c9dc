"""Reads of jobs, scoped through the tenancy door.

Who sees which jobs: reviewers and above see every job of their organisation; an annotator sees
only the jobs they started (another's job is a 404 to them, on pages and on the websocket).
Who may cancel or retry: owners and managers, and the member who started the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from platform_core.jobs.core import job_display_state, job_kind_label
from platform_core.jobs.services import job_may_cancel, job_may_retry
from platform_core.models import Job, Role
from platform_core.tenancy import Tenant, get_for_org_or_404


def job_sees_all(tenant: Tenant) -> bool:
    return tenant.has_role(Role.REVIEWER)


def job_list_for(tenant: Tenant) -> QuerySet[Job]:
    jobs = Job.objects.for_org(tenant.org).select_related("created_by", "project")
    if not job_sees_all(tenant):
        jobs = jobs.filter(created_by=tenant.membership.user_id)
    return jobs.order_by("-created_at", "-pk")


def access_job(tenant: Tenant, job_id: int) -> Job:
    """The job, if this member may see it; 404 for other organisations' jobs and, for annotators,
    for jobs started by someone else."""
    return get_for_org_or_404(job_list_for(tenant), tenant.org, pk=job_id)


def job_may_control(tenant: Tenant, job: Job) -> bool:
    """Cancel / retry: owners and managers, and whoever started the job."""
    return tenant.can_manage or (job.created_by_id is not None and job.created_by_id == tenant.membership.user_id)


@dataclass
class JobRow:
    """A job as a page shows it: the record plus what the viewer may do with it."""

    job: Job
    kind_label: str
    display_state: str
    may_cancel: bool
    may_retry: bool

    @property
    def state_label(self) -> str:
        return "Stalled" if self.display_state == "stalled" else self.job.get_state_display()


def job_rows(tenant: Tenant, jobs: Any) -> list[JobRow]:
    rows = []
    for job in jobs:
        control = job_may_control(tenant, job)
        rows.append(
            JobRow(
                job=job,
                kind_label=job_kind_label(job.kind),
                display_state=job_display_state(job),
                may_cancel=control and job_may_cancel(job),
                may_retry=control and job_may_retry(job),
            )
        )
    return rows


@dataclass
class ReportTable:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)


@dataclass
class ReportView:
    summary: list[tuple[str, Any]]
    tables: list[ReportTable]
    lists: list[tuple[str, list[Any]]]


def job_report_view(report: Any) -> ReportView:
    """A runner's report laid out for the page: scalar values as a summary, lists of objects
    (e.g. ``skipped: [{"name": ..., "reason": ...}]``) as tables, other lists as lists."""
    view = ReportView(summary=[], tables=[], lists=[])
    if not isinstance(report, dict):
        if report not in (None, {}, []):
            view.summary.append(("Result", report))
        return view
    for key, value in report.items():
        title = str(key).replace("_", " ").capitalize()
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            columns: list[str] = []
            for item in value:
                columns += [str(column) for column in item if str(column) not in columns]
            rows = [[item.get(column, "") for column in columns] for item in value]
            view.tables.append(ReportTable(title=title, columns=[c.replace("_", " ") for c in columns], rows=rows))
        elif isinstance(value, list):
            view.lists.append((title, value))
        else:
            view.summary.append((title, value))
    return view
