"""The manager's crowd pages and the review queue: who may open them (reviewers and up; annotators
403, other organisations 404), the numbers they show against the rows behind them, the forms that
create, close, aggregate, review, pay and block, their htmx rows, and the reason a rejected member
reads in "My tasks"."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.models import Annotation, Question, Task
from crowd.manage_selectors import batch_unit_count
from crowd.models import CrowdAssignment, CrowdBatch, CrowdResult, ReviewAction
from crowd.results import batch_aggregate
from tests.crowd.helpers import crowd_setup
from tests.crowd.review_world import answer, worker

HTMX = {"HTTP_HX_REQUEST": "true"}


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(name: str, org: str = "demo-lab", **kwargs: Any) -> str:
    return reverse(name, kwargs={"org_slug": org, **kwargs})


def flashes(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)._queued_messages]


def key() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def batch_world(world: Any) -> Any:
    """A study-link batch of Demo Lab with a reward of 10 cents: three items, three workers.

    item 0: one, one, one (approved, approved, submitted)   item 1: one, many (submitted; w3 rejected)
    item 2: handed out to w1, not answered; a hidden-gold answer of w2 (approved); a bonus of 25 cents"""
    crowd = crowd_setup(world.demo, regular=3, hidden=1, qualification=0, with_test=False)
    CrowdBatch.objects.filter(pk=crowd.batch.pk).update(reward_cents=10)
    crowd.batch.refresh_from_db()
    w1, w2, w3 = (worker(world.demo, name) for name in ("alice", "bob", "carol"))
    a, b, c = crowd.regular
    answer(crowd.batch, w1, a, "one", state="approved")
    answer(crowd.batch, w2, a, "one", state="approved")
    answer(crowd.batch, w3, a, "one")
    answer(crowd.batch, w1, b, "one")
    answer(crowd.batch, w2, b, "many")
    answer(crowd.batch, w3, b, "many", state="rejected")
    answer(crowd.batch, w1, c, "", state="assigned")
    gold = answer(crowd.batch, w2, crowd.hidden[0].media, "many", is_gold=True, state="approved")
    ReviewAction.objects.create(
        organization=world.demo.org, kind="bonus", assignment=gold, worker=w2, amount_cents=25, reason="x"
    )
    crowd.workers = {"alice": w1, "bob": w2, "carol": w3}
    return crowd


# --- who may open what ----------------------------------------------------------------------------
def _pages(crowd: Any, world: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """Every new page as (method, url, data)."""
    assignment = CrowdAssignment.objects.filter(batch=crowd.batch, state="submitted").first()
    batch_aggregate(crowd.batch)
    result = CrowdResult.objects.filter(batch=crowd.batch).first()
    Task.objects.filter(pk=world.demo.task.pk).update(state=Task.State.SUBMITTED)
    batch = crowd.batch.pk
    return [
        ("get", url("crowd_batch_list", project_id=world.demo.project.pk), {}),
        ("get", url("crowd_batch_create", project_id=world.demo.project.pk), {}),
        ("get", url("crowd_batch_detail", batch_id=batch), {}),
        ("post", url("crowd_batch_state", batch_id=batch), {"state": "closed"}),
        ("post", url("crowd_batch_aggregate", batch_id=batch), {}),
        ("get", url("crowd_batch_results_csv", batch_id=batch), {}),
        ("get", url("crowd_review_queue"), {}),
        (
            "post",
            url("crowd_assignment_review", assignment_id=assignment.pk),
            {"decision": "approve", "request_key": key()},
        ),
        (
            "post",
            url("crowd_assignment_bonus", assignment_id=assignment.pk),
            {"amount": "0.10", "reason": "x", "request_key": key()},
        ),
        (
            "post",
            url("crowd_worker_block", worker_id=assignment.worker_id),
            {"action": "block", "reason": "x", "request_key": key()},
        ),
        ("post", url("crowd_task_review", task_id=world.demo.task.pk), {"decision": "accept", "request_key": key()}),
        ("post", url("crowd_result_review", result_id=result.pk), {"answer": "one"}),
    ]


def test_it_answers_404_to_another_organisation_and_changes_nothing(batch_world: Any, world: Any) -> None:
    outsider = client_for(world.outsider)
    before = (CrowdAssignment.objects.filter(state="submitted").count(), ReviewAction.objects.count())
    for method, page, data in _pages(batch_world, world):
        response = getattr(outsider, method)(page, data)
        assert response.status_code == 404, f"{method.upper()} {page} -> {response.status_code}"
        if page == url("crowd_review_queue"):
            continue  # names no Demo Lab object
        # Their own organisation in the URL, Demo Lab's object: the same 404.
        mixed = page.replace("/o/demo-lab/", "/o/other-lab/")
        response = getattr(outsider, method)(mixed, data)
        assert response.status_code == 404, f"{method.upper()} {mixed} -> {response.status_code}"
    assert (CrowdAssignment.objects.filter(state="submitted").count(), ReviewAction.objects.count()) == before
    assert CrowdBatch.objects.get(pk=batch_world.batch.pk).state == "open"
    assert not world.demo.task.review_actions.exists()


def test_it_refuses_annotators(batch_world: Any, world: Any) -> None:
    annotator = client_for(world.annotator)
    for method, page, data in _pages(batch_world, world):
        response = getattr(annotator, method)(page, data)
        assert response.status_code == 403, f"{method.upper()} {page} -> {response.status_code}"
    assert not ReviewAction.objects.exclude(kind="bonus").exists()


def test_it_lets_reviewers_look_and_review_but_not_run_batches(batch_world: Any, world: Any) -> None:
    reviewer = client_for(world.reviewer)
    batch = batch_world.batch.pk
    assert reviewer.get(url("crowd_batch_detail", batch_id=batch)).status_code == 200
    assert reviewer.get(url("crowd_review_queue")).status_code == 200
    assert reviewer.get(url("crowd_batch_create", project_id=world.demo.project.pk)).status_code == 403
    assert reviewer.post(url("crowd_batch_state", batch_id=batch), {"state": "closed"}).status_code == 403
    assert reviewer.post(url("crowd_batch_aggregate", batch_id=batch)).status_code == 403
    assert not CrowdResult.objects.exists()


# --- batches --------------------------------------------------------------------------------------
def test_it_lists_a_projects_batches_with_their_progress(batch_world: Any, world: Any) -> None:
    response = client_for(world.manager).get(url("crowd_batch_list", project_id=world.demo.project.pk))
    assert response.status_code == 200
    row = response.context["rows"][0]
    # 3 units × 3 answers wanted; counted: a's three and b's two (the rejected and the gold are not).
    assert (row.units, row.answers_wanted, row.answers_counted) == (3, 9, 5)
    batch = row.batch
    assert (batch.assigned_count, batch.submitted_count, batch.approved_count, batch.rejected_count) == (1, 3, 3, 1)
    assert "5/9" in response.content.decode()


def test_it_lists_batches_in_a_constant_number_of_queries(batch_world: Any, world: Any) -> None:
    client = client_for(world.manager)
    page = url("crowd_batch_list", project_id=world.demo.project.pk)
    with CaptureQueriesContext(connection) as one:
        client.get(page)
    for n in range(3):
        CrowdBatch.objects.create(project=world.demo.project, name=f"More {n}", question=batch_world.question)
    with CaptureQueriesContext(connection) as four:
        client.get(page)
    assert len(four) == len(one)


def test_it_shows_numbers_that_match_the_rows(batch_world: Any, world: Any) -> None:
    response = client_for(world.manager).get(url("crowd_batch_detail", batch_id=batch_world.batch.pk))
    assert response.status_code == 200
    progress, cost = response.context["progress"], response.context["cost"]
    assert (progress.units, progress.units_done, progress.k) == (3, 1, 3)  # only item 0 has its 3 answers
    assert (progress.assigned, progress.submitted, progress.approved, progress.rejected, progress.gold) == (
        1,
        3,
        3,
        1,
        1,
    )
    # 3 approved answers (the gold one included) × 10 cents, plus the 25-cent bonus.
    assert (cost.approved, cost.rewards_cents, cost.bonus_cents, cost.total_cents) == (3, 30, 25, 55)
    html = response.content.decode()
    assert "$0.55" in html and 'data-testid="units-done">1/3<' in html
    assert response.context["entry_urls"][0][0] == "link" and batch_world.batch.public_id in html

    workers = {row.worker.external_id: row for row in response.context["workers"]}
    assert {name: (row.answers, row.gold_answered) for name, row in workers.items()} == {
        "alice": (2, 0),
        "bob": (2, 1),
        "carol": (2, 0),
    }
    assert workers["bob"].gold_accuracy == 1.0 and workers["alice"].gold_accuracy is None
    assert all(row.agreement is None for row in workers.values())  # nothing aggregated yet


def test_it_aggregates_on_demand_and_shows_agreement_with_the_results(batch_world: Any, world: Any) -> None:
    client = client_for(world.manager)
    response = client.post(url("crowd_batch_aggregate", batch_id=batch_world.batch.pk))
    assert response.status_code == 303
    (message,) = flashes(response)
    assert message.startswith("Aggregated 2 units in ") and message.endswith("1 need review, 1 answer written.")

    page = client.get(url("crowd_batch_detail", batch_id=batch_world.batch.pk))
    rows = [row["result"] for row in page.context["result_rows"]]
    assert [r.needs_review for r in rows] == [True, False]  # the tie on item 1 first
    workers = {row.worker.external_id: row for row in page.context["workers"]}
    a, b = (CrowdResult.objects.get(batch=batch_world.batch, media=item).answer for item in batch_world.regular[:2])
    assert a == "one" and b in ("one", "many")
    # alice said one and one, bob one and many: on the tied item exactly one of them agrees.
    assert workers["alice"].agreement == (1 + (b == "one")) / 2 and workers["alice"].compared == 2
    assert workers["bob"].agreement == (1 + (b == "many")) / 2
    assert workers["alice"].agreement + workers["bob"].agreement == 1.5
    assert workers["carol"].compared == 1  # her rejected answer is not compared


def test_it_downloads_the_aggregated_answers_as_csv(batch_world: Any, world: Any) -> None:
    batch_aggregate(batch_world.batch)
    response = client_for(world.reviewer).get(url("crowd_batch_results_csv", batch_id=batch_world.batch.pk))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    first = batch_world.regular[0]
    tied = CrowdResult.objects.get(batch=batch_world.batch, media=batch_world.regular[1])
    assert [(int(r["item_id"]), r["answer"], r["needs_review"]) for r in rows] == [
        (first.pk, "one", "no"),
        (batch_world.regular[1].pk, tied.answer, "yes"),
    ]
    assert rows[0]["votes"] == '{"one":3}' and rows[0]["method"] == "dawid_skene"


def test_it_creates_a_batch_of_the_projects_own_question(world: Any) -> None:
    question = Question.objects.create(project=world.demo.project, text="Many?", choices=["one", "many"])
    client = client_for(world.manager)
    page = url("crowd_batch_create", project_id=world.demo.project.pk)
    form = client.get(page).context["form"]
    assert set(form.fields["question"].queryset) == {question, world.demo.question}
    assert set(form.fields["label"].queryset) == {world.demo.label}
    data = {
        "name": "Parts",
        "kind": "classify",
        "question": question.pk,
        "provider": "link",
        "assignments_per_item": 3,
        "gold_rate": 0.1,
        "reward_cents": 5,
        "items_per_session": 10,
        "agreement_threshold": 0.6,
        "completion_code": "DONE",
        "screenout_code": "",
    }
    response = client.post(page, data)
    batch = CrowdBatch.objects.get(name="Parts")
    assert response.status_code == 302 and response["Location"] == url("crowd_batch_detail", batch_id=batch.pk)
    assert (batch.project, batch.question, batch.created_by, batch.state) == (
        world.demo.project,
        question,
        world.manager,
        "open",
    )

    # Another organisation's question, or a mask task without a label: refused, nothing made.
    foreign = client.post(page, {**data, "name": "Smuggled", "question": world.other.question.pk})
    assert foreign.status_code == 400 and "question" in foreign.context["form"].errors
    no_label = client.post(page, {**data, "name": "Masks", "kind": "mask", "question": ""})
    assert no_label.status_code == 400 and "label" in no_label.context["form"].errors
    assert not CrowdBatch.objects.filter(name__in=["Smuggled", "Masks"]).exists()


def test_it_closes_and_reopens_a_batch(batch_world: Any, world: Any) -> None:
    client = client_for(world.manager)
    page = url("crowd_batch_state", batch_id=batch_world.batch.pk)
    assert client.post(page, {"state": "closed"}).status_code == 303
    assert CrowdBatch.objects.get(pk=batch_world.batch.pk).state == "closed"
    response = client.post(page, {"state": "archived"})
    assert flashes(response) == ["Choose to close or to reopen the batch."]
    assert CrowdBatch.objects.get(pk=batch_world.batch.pk).state == "closed"
    client.post(page, {"state": "open"})
    assert CrowdBatch.objects.get(pk=batch_world.batch.pk).state == "open"


# --- the review queue -----------------------------------------------------------------------------
def test_it_puts_answers_of_units_that_need_review_first(batch_world: Any, world: Any) -> None:
    batch_aggregate(batch_world.batch)
    response = client_for(world.reviewer).get(url("crowd_review_queue"))
    queue = list(response.context["assignments"])
    b = batch_world.regular[1]
    assert [a.media_id for a in queue] == [b.pk, b.pk, batch_world.regular[0].pk]
    assert [a.in_review for a in queue] == [True, True, False]
    results = [row["result"] for row in response.context["results"]]
    assert [r.media_id for r in results] == [b.pk]


def test_it_shows_the_queue_in_a_constant_number_of_queries(batch_world: Any, world: Any) -> None:
    client = client_for(world.reviewer)
    with CaptureQueriesContext(connection) as few:
        client.get(url("crowd_review_queue"))
    extra = worker(world.demo, "dave")
    for item in batch_world.regular:
        answer(batch_world.batch, extra, item, "one")
    with CaptureQueriesContext(connection) as more:
        client.get(url("crowd_review_queue"))
    assert len(more) == len(few)


def test_it_approves_with_htmx_and_takes_a_double_click_as_one(batch_world: Any, world: Any) -> None:
    assignment = CrowdAssignment.objects.filter(batch=batch_world.batch, state="submitted").first()
    client = client_for(world.reviewer)
    page = url("crowd_assignment_review", assignment_id=assignment.pk)
    data = {"decision": "approve", "reason": "", "request_key": key()}
    first = client.post(page, data, **HTMX)
    second = client.post(page, data, **HTMX)
    assert first.status_code == second.status_code == 200
    row = first.content.decode()
    assert row.lstrip().startswith(f'<tr id="assignment-{assignment.pk}"') and "Approved" in row
    assert "Answer approved." in second.content.decode()  # the first decision, not an error
    assert ReviewAction.objects.filter(kind="approve").count() == 1
    assignment.refresh_from_db()
    assert assignment.state == "approved" and assignment.reviewed_by == world.reviewer


def test_it_shows_a_refused_rejection_in_the_row_and_keeps_the_answer(batch_world: Any, world: Any) -> None:
    assignment = CrowdAssignment.objects.filter(batch=batch_world.batch, state="submitted").first()
    client = client_for(world.reviewer)
    page = url("crowd_assignment_review", assignment_id=assignment.pk)
    response = client.post(page, {"decision": "reject", "reason": "", "request_key": key()}, **HTMX)
    assert response.status_code == 200 and "needs a reason" in response.content.decode()
    response = client.post(
        page, {"decision": "reject", "reason": "", "request_key": key(), "next": "https://evil.example/"}
    )
    assert response.status_code == 303 and response["Location"] == url("crowd_review_queue")
    assert flashes(response) == ["A rejection needs a reason the worker can read."]
    assignment.refresh_from_db()
    assert assignment.state == "submitted" and not ReviewAction.objects.filter(kind="reject").exists()


def test_it_pays_a_bonus_in_dollars(batch_world: Any, world: Any) -> None:
    assignment = CrowdAssignment.objects.filter(batch=batch_world.batch, state="submitted").first()
    client = client_for(world.reviewer)
    page = url("crowd_assignment_bonus", assignment_id=assignment.pk)
    for amount in ("", "abc", "0.001", "NaN"):
        response = client.post(page, {"amount": amount, "reason": "x", "request_key": key()}, **HTMX)
        assert "Give the bonus in dollars" in response.content.decode(), amount
    response = client.post(page, {"amount": "0.75", "reason": "Careful work", "request_key": key()}, **HTMX)
    assert "Bonus of $0.75 recorded." in response.content.decode()
    bonus = ReviewAction.objects.get(kind="bonus", assignment=assignment)
    assert (bonus.amount_cents, bonus.reason, bonus.actor) == (75, "Careful work", world.reviewer)


def test_it_blocks_a_worker_from_the_batch_page(batch_world: Any, world: Any) -> None:
    carol = batch_world.workers["carol"]
    client = client_for(world.reviewer)
    page = url("crowd_worker_block", worker_id=carol.pk)
    data = {"action": "block", "reason": "Answers at random", "request_key": key(), "batch": batch_world.batch.pk}
    response = client.post(page, data, **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith(f'<tr id="worker-{carol.pk}"') and "blocked" in html and "Unblock" in html
    carol.refresh_from_db()
    assert carol.blocked and carol.block_reason == "Answers at random"
    detail = client.get(url("crowd_batch_detail", batch_id=batch_world.batch.pk))
    assert [row.action.kind for row in detail.context["history"]] == ["block", "bonus"]

    response = client.post(page, {"action": "unblock", "request_key": key(), "batch": batch_world.batch.pk})
    assert response.status_code == 303 and response["Location"] == url(
        "crowd_batch_detail", batch_id=batch_world.batch.pk
    )
    carol.refresh_from_db()
    assert not carol.blocked


def test_it_settles_a_result_from_the_queue(batch_world: Any, world: Any) -> None:
    batch_aggregate(batch_world.batch)
    result = CrowdResult.objects.get(batch=batch_world.batch, needs_review=True)
    response = client_for(world.reviewer).post(
        url("crowd_result_review", result_id=result.pk), {"answer": "many"}, **HTMX
    )
    assert response.status_code == 200 and "settled" in response.content.decode()
    result.refresh_from_db()
    assert result.answer == "many" and result.reviewed_by == world.reviewer
    item = result.media
    item.refresh_from_db()
    assert item.answers[str(batch_world.question.pk)] == "many"


def test_it_sends_a_rejected_tasks_reason_to_its_annotator(world: Any) -> None:
    task = world.demo.task
    Task.objects.filter(pk=task.pk).update(state=Task.State.SUBMITTED)
    reviewer = client_for(world.reviewer)
    queue = reviewer.get(url("crowd_review_queue"))
    assert [t.pk for t in queue.context["tasks"]] == [task.pk]
    page = url("crowd_task_review", task_id=task.pk)
    refused = reviewer.post(page, {"decision": "reject", "reason": " ", "request_key": key()}, **HTMX)
    assert "needs a reason" in refused.content.decode()
    response = reviewer.post(
        page, {"decision": "reject", "reason": "Handles are missing.", "request_key": key()}, **HTMX
    )
    assert "Rejected" in response.content.decode()
    task.refresh_from_db()
    assert task.state == Task.State.REJECTED and task.review_note == "Handles are missing."

    my_tasks = client_for(world.annotator).get(url("my_tasks")).content.decode()
    assert "Handles are missing." in my_tasks


def test_it_keeps_the_reason_given_on_the_project_tasks_page(world: Any) -> None:
    task = world.demo.task
    Task.objects.filter(pk=task.pk).update(state=Task.State.SUBMITTED)
    client_for(world.reviewer).post(
        url("task_review", task_id=task.pk), {"decision": "reject", "reason": "Redo item 3"}
    )
    task.refresh_from_db()
    assert task.state == Task.State.REJECTED and task.review_note == "Redo item 3"
    assert "Redo item 3" in client_for(world.annotator).get(url("my_tasks")).content.decode()


def test_it_links_the_crowd_pages_from_the_project_page_for_reviewers_only(world: Any) -> None:
    page = url("project_detail", project_id=world.demo.project.pk)
    crowd = url("crowd_batch_list", project_id=world.demo.project.pk)
    assert crowd in client_for(world.reviewer).get(page).content.decode()
    assert crowd not in client_for(world.annotator).get(page).content.decode()


def test_it_keeps_the_audit_read_only_in_the_admin(batch_world: Any, world: Any) -> None:
    bonus = ReviewAction.objects.get(kind="bonus")
    client = client_for(world.manager)
    change = reverse("admin:crowd_reviewaction_change", args=[bonus.pk])
    response = client.get(change)
    assert response.status_code == 200 and response.context["has_change_permission"] is False
    client.post(change, {"reason": "rewritten", "amount_cents": 1})
    delete = client.post(reverse("admin:crowd_reviewaction_delete", args=[bonus.pk]), {"post": "yes"})
    assert delete.status_code == 403
    bonus.refresh_from_db()
    assert (bonus.reason, bonus.amount_cents) == ("x", 25)
    assert client.get(reverse("admin:crowd_reviewaction_add")).status_code == 403


def test_it_counts_objects_as_the_units_of_an_object_question(world: Any) -> None:
    obj = world.demo.annotation
    batch = CrowdBatch.objects.create(project=world.demo.project, name="Objects", question=world.demo.question)
    Annotation.objects.create(media=obj.media, label=obj.label, rle=obj.rle, proposed=True)  # not yet accepted
    assert batch_unit_count(batch) == 1
    Annotation.objects.create(media=obj.media, label=obj.label, rle=obj.rle)
    assert batch_unit_count(batch) == 2


# --- Mechanical Turk from the batch page -----------------------------------------------------------
def test_the_batch_page_starts_publishing_and_syncing_on_mturk(world: Any) -> None:
    from platform_core.models import Job

    crowd = crowd_setup(world.demo, provider="mturk", regular=2, hidden=0, qualification=0, with_test=False)
    CrowdBatch.objects.filter(pk=crowd.batch.pk).update(reward_cents=5)
    target = url("crowd_batch_mturk", batch_id=crowd.batch.pk)
    page = client_for(world.manager).get(url("crowd_batch_detail", batch_id=crowd.batch.pk))
    assert b"Publish HITs on Mechanical Turk" in page.content and b"0 HITs published" in page.content

    # SITE_URL is http in tests: publishing is refused with the reason, before any job exists.
    refused = client_for(world.manager).post(target, {"action": "publish"})
    assert refused.status_code == 303
    assert any("https" in text for text in flashes(refused))
    mturk_jobs = Job.objects.filter(kind__startswith="mturk")
    assert not mturk_jobs.exists()

    synced = client_for(world.reviewer).post(target, {"action": "sync"})
    job = mturk_jobs.get()
    assert (job.kind, job.params, job.created_by) == ("mturk_sync_batch", {"batch_id": crowd.batch.pk}, world.reviewer)
    assert flashes(synced) == [f"Syncing on Mechanical Turk: job #{job.pk} (see Jobs)."]

    # A reviewer may not publish (it spends money); an annotator may do neither.
    assert client_for(world.reviewer).post(target, {"action": "publish"}).status_code == 403
    assert client_for(world.annotator).post(target, {"action": "sync"}).status_code == 403
    assert mturk_jobs.count() == 1


def test_a_batch_not_on_mturk_is_neither_published_nor_synced(world: Any, settings: Any) -> None:
    from platform_core.models import Job

    settings.SITE_URL = "https://annotate.example.org"
    crowd = crowd_setup(world.demo, regular=1, hidden=0, qualification=0, with_test=False)
    for action in ("publish", "sync", "delete"):
        response = client_for(world.manager).post(url("crowd_batch_mturk", batch_id=crowd.batch.pk), {"action": action})
        assert response.status_code == 303 and flashes(response)
    assert not Job.objects.filter(kind__startswith="mturk").exists()
    # Another organisation's member finds no such batch.
    foreign = client_for(world.outsider).post(
        url("crowd_batch_mturk", org="other-lab", batch_id=crowd.batch.pk), {"action": "sync"}
    )
    assert foreign.status_code == 404
