"""Job pages (list, detail, result download, Cancel / Retry) and the jobs admin: who sees which
job, who may act on it, htmx partials, and other organisations' jobs answering 404."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from platform_core.models import Job
from tests.platform_core import job_kinds  # noqa: F401 - registers the test job kinds


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(name: str, job: Job | None = None, org: str = "demo-lab") -> str:
    kwargs: dict[str, Any] = {"org_slug": org}
    if job is not None:
        kwargs["job_id"] = job.pk
    return reverse(name, kwargs=kwargs)


def make_job(world: Any, user: Any, **fields: Any) -> Job:
    fields.setdefault("state", Job.State.QUEUED)
    return Job.objects.create(
        organization=world.demo.org, project=world.demo.project, kind="test_steps", created_by=user, **fields
    )


@pytest.mark.django_db
def test_it_lists_every_job_of_the_organisation_to_reviewers_and_up(world: Any) -> None:
    managers_job = make_job(world, world.manager)
    for user in (world.owner, world.manager, world.reviewer):
        response = client_for(user).get(url("job_list"))
        assert response.status_code == 200
        assert [row.job for row in response.context["rows"]] == [managers_job, world.demo.job]
        assert world.other.job.pk not in {row.job.pk for row in response.context["rows"]}


@pytest.mark.django_db
def test_it_lists_to_an_annotator_only_the_jobs_they_started(world: Any) -> None:
    make_job(world, world.manager)
    response = client_for(world.annotator).get(url("job_list"))
    assert [row.job for row in response.context["rows"]] == [world.demo.job]
    assert b"You see the jobs you started." in response.content


@pytest.mark.django_db
def test_it_answers_404_to_an_annotator_for_a_job_someone_else_started(world: Any) -> None:
    job = make_job(world, world.manager, result_file="jobs/x.csv")
    annotator = client_for(world.annotator)
    for name in ("job_detail", "job_result"):
        assert annotator.get(url(name, job)).status_code == 404
    for name in ("job_cancel", "job_retry"):
        assert annotator.post(url(name, job)).status_code == 404
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED


@pytest.mark.django_db
def test_it_renders_the_table_alone_for_htmx_and_varies_on_it(world: Any) -> None:
    manager = client_for(world.manager)
    full = manager.get(url("job_list"))
    partial = manager.get(url("job_list"), headers={"HX-Request": "true"})
    for response in (full, partial):
        assert "HX-Request" in response["Vary"]
        assert b'id="jobs-table"' in response.content
    assert b"<html" in full.content and b"js/jobs.js" in full.content
    assert b"<html" not in partial.content
    assert b'data-jobs-socket="/ws/o/demo-lab/jobs/"' in full.content


@pytest.mark.django_db
def test_it_lists_jobs_in_a_constant_number_of_queries(world: Any, django_assert_num_queries: Any) -> None:
    manager = client_for(world.manager)
    manager.get(url("job_list"))  # session and the like, once

    def count() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as queries:
            assert manager.get(url("job_list")).status_code == 200
        return len(queries)

    make_job(world, world.manager)
    few = count()
    for _ in range(6):
        make_job(world, world.reviewer)
    assert count() == few


@pytest.mark.django_db
def test_it_shows_progress_report_and_result_link_of_a_job(world: Any) -> None:
    response = client_for(world.annotator).get(url("job_detail", world.demo.job))
    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-job-progress="{world.demo.job.pk}" max="1" value="1"' in html
    assert "<td>notes.txt</td><td>not an image</td>" in html
    assert url("job_result", world.demo.job) in html
    partial = client_for(world.annotator).get(url("job_detail", world.demo.job), headers={"HX-Request": "true"})
    assert b'id="job-status"' in partial.content and b"<html" not in partial.content
    assert "HX-Request" in partial["Vary"]


@pytest.mark.django_db
def test_it_shows_why_a_job_failed_and_offers_retry(world: Any) -> None:
    job = make_job(world, world.manager, state=Job.State.FAILED, message="the archive is corrupt")
    html = client_for(world.manager).get(url("job_detail", job)).content.decode()
    assert "the archive is corrupt" in html
    assert url("job_retry", job) in html
    assert url("job_cancel", job) not in html


@pytest.mark.django_db
def test_it_shows_a_stalled_job_as_stalled_with_retry(world: Any, settings: Any) -> None:
    long_ago = timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 5)
    job = make_job(world, world.manager, state=Job.State.RUNNING, started_at=long_ago, heartbeat_at=long_ago)
    html = client_for(world.manager).get(url("job_list")).content.decode()
    assert 'data-state="stalled"' in html and ">Stalled<" in html
    assert url("job_retry", job) in html and url("job_cancel", job) in html


@pytest.mark.django_db
def test_it_downloads_the_result_file_as_an_attachment(world: Any) -> None:
    response = client_for(world.annotator).get(url("job_result", world.demo.job))
    assert response.status_code == 200
    stored_name = world.demo.job.result_file.name.rsplit("/", 1)[-1]  # report.csv, or report_<suffix>.csv
    assert stored_name.startswith("report") and stored_name.endswith(".csv")
    assert response["Content-Disposition"] == f'attachment; filename="{stored_name}"'
    assert b"".join(response.streaming_content) == b"name,reason\nnotes.txt,not an image\n"


@pytest.mark.django_db
def test_it_answers_404_for_a_job_without_result_file(world: Any) -> None:
    job = make_job(world, world.manager)
    assert client_for(world.manager).get(url("job_result", job)).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["manager", "owner", "annotator"])
def test_it_lets_managers_and_the_starter_cancel_a_queued_job(world: Any, who: str) -> None:
    job = make_job(world, world.annotator)
    response = client_for(getattr(world, who)).post(url("job_cancel", job), {"next": url("job_list")})
    assert response.status_code == 303
    assert response["Location"] == url("job_list")
    job.refresh_from_db()
    assert job.state == Job.State.CANCELLED
    assert job.message == f"Cancelled by {who}."


@pytest.mark.django_db
def test_it_refuses_cancel_and_retry_to_a_reviewer_who_did_not_start_the_job(world: Any) -> None:
    queued = make_job(world, world.manager)
    failed = make_job(world, world.manager, state=Job.State.FAILED)
    reviewer = client_for(world.reviewer)
    assert reviewer.post(url("job_cancel", queued)).status_code == 403
    assert reviewer.post(url("job_retry", failed)).status_code == 403
    html = reviewer.get(url("job_list")).content.decode()
    assert url("job_cancel", queued) not in html and url("job_retry", failed) not in html
    assert [job.state for job in Job.objects.filter(pk__in=[queued.pk, failed.pk]).order_by("pk")] == [
        Job.State.QUEUED,
        Job.State.FAILED,
    ]


@pytest.mark.django_db
def test_it_retries_a_failed_job_from_the_page(world: Any, django_capture_on_commit_callbacks: Any) -> None:
    job = make_job(world, world.manager, state=Job.State.FAILED, message="boom", attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(world.manager).post(url("job_retry", job), {"next": "https://evil.example/"})
    # A foreign "next" is ignored: back to the job's page.
    assert (response.status_code, response["Location"]) == (303, url("job_detail", job))
    job.refresh_from_db()
    assert (job.state, job.message) == (Job.State.QUEUED, "")
    assert DBTaskResult.objects.filter(pk=job.task_result_id).exists()


@pytest.mark.django_db
def test_it_explains_when_a_finished_job_cannot_be_cancelled(world: Any) -> None:
    response = client_for(world.manager).post(url("job_cancel", world.demo.job), follow=True)
    assert "Only a queued or running job can be cancelled." in response.content.decode()
    world.demo.job.refresh_from_db()
    assert world.demo.job.state == Job.State.SUCCEEDED


@pytest.mark.django_db
def test_it_links_the_jobs_page_from_the_header(world: Any) -> None:
    html = client_for(world.annotator).get(url("dashboard")).content.decode()
    assert f'href="{url("job_list")}"' in html


# --- admin -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_lists_jobs_with_state_and_progress_in_the_admin(world: Any) -> None:
    make_job(world, world.manager, state=Job.State.RUNNING, progress_done=3, progress_total=8)
    response = client_for(world.manager).get(reverse("admin:platform_core_job_changelist"))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<progress max="8" value="3"></progress> 3 / 8' in html
    assert "Test steps" in html
    assert set(response.context["cl"].result_list) == set(Job.objects.filter(organization=world.demo.org))


@pytest.mark.django_db
def test_it_keeps_jobs_read_only_in_the_admin(world: Any) -> None:
    manager = client_for(world.manager)
    change = reverse("admin:platform_core_job_change", args=[world.demo.job.pk])
    response = manager.get(change)
    assert response.status_code == 200
    assert not response.context["has_change_permission"]
    assert manager.get(reverse("admin:platform_core_job_add")).status_code == 403
    assert manager.post(change, {"kind": "changed"}).status_code == 403


@pytest.mark.django_db
def test_it_retries_and_cancels_from_the_admin_within_the_managers_organisation(
    world: Any, django_capture_on_commit_callbacks: Any
) -> None:
    failed = make_job(world, world.manager, state=Job.State.FAILED)
    queued = make_job(world, world.annotator)
    theirs = Job.objects.create(organization=world.other.org, kind="test_steps", state=Job.State.FAILED)
    manager = client_for(world.manager)
    changelist = reverse("admin:platform_core_job_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        manager.post(changelist, {"action": "retry_jobs", "_selected_action": [failed.pk, theirs.pk]})
    manager.post(changelist, {"action": "cancel_jobs", "_selected_action": [queued.pk, world.demo.job.pk]})
    states = {job.pk: job.state for job in Job.objects.all()}
    assert states[failed.pk] == Job.State.QUEUED
    assert states[theirs.pk] == Job.State.FAILED  # another organisation's: out of reach
    assert states[queued.pk] == Job.State.CANCELLED
    assert states[world.demo.job.pk] == Job.State.SUCCEEDED  # finished: refused with a warning
