"""The worker's pages end to end with Django's test client and no session: study-link and Mechanical
Turk entry, the qualification test, tasks, the end of a visit, gold that never shows, blocks, the
framing rules, expired assignments and the feedback a returning worker sees."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crowd import services
from crowd.models import CrowdAssignment, CrowdWorker, QualificationAttempt
from tests.crowd.helpers import Crowd, RecordingClient, crowd_setup, link_url, mturk_url

COMPLETE = "https://app.prolific.com/submissions/complete?cc="


def _token(url: str) -> str:
    match = re.match(r"^/crowd/(?:task|qualify)/([^/]+)/$", url)
    assert match, url
    return match.group(1)


def _pass_test(worker: RecordingClient, url: str, crowd: Crowd, answer: str = "one") -> Any:
    page = worker.get(url)
    assert page.status_code == 200
    answers = {f"answer-{n}": answer for n in range(len(crowd.qualification))}
    return worker.post(url, answers)


def _work(worker: RecordingClient, response: Any, answer: str = "one") -> Any:
    """Answer tasks until the visit leaves the task pages; each task's page and image are fetched."""
    while response.status_code == 302 and response["Location"].startswith("/crowd/task/"):
        url = response["Location"]
        page = worker.get(url)
        assert page.status_code == 200
        assert worker.get(reverse("crowd_task_image", kwargs={"token": _token(url)})).status_code == 200
        response = worker.post(url, {"answer": answer})
    return response


# --- study link -------------------------------------------------------------------------------
def test_it_walks_a_study_link_from_entry_to_the_completion_code(world: Any) -> None:
    crowd = crowd_setup(world.demo)
    worker = RecordingClient()

    entry = worker.get(link_url(crowd.batch))
    assert entry.status_code == 302 and entry["Location"].startswith("/crowd/qualify/")
    passed = _pass_test(worker, entry["Location"], crowd)
    assert passed.status_code == 302 and passed["Location"].startswith("/crowd/task/")

    end = _work(worker, passed, answer="many")
    assert end.status_code == 302
    assert end["Location"] == COMPLETE + "C0MPL3TE"

    person = CrowdWorker.objects.get(external_id="worker-1")
    done = CrowdAssignment.objects.filter(worker=person)
    assert {a.media_id for a in done} == {m.pk for m in crowd.regular}
    assert {(a.state, a.answer, a.study_id, a.session_id) for a in done} == {("submitted", "many", "study-1", "s1")}
    assert QualificationAttempt.objects.get(worker=person).score == 1.0
    # The worker never had a session, and no page set a cookie.
    assert all(not response.cookies for response in worker.seen)


def test_it_ends_a_visit_after_its_items_per_session(world: Any) -> None:
    crowd = crowd_setup(world.demo, with_test=False, items_per_session=2)
    worker = RecordingClient()
    end = _work(worker, worker.get(link_url(crowd.batch)))
    assert end["Location"] == COMPLETE + "C0MPL3TE"
    assert CrowdAssignment.objects.filter(state="submitted").count() == 2
    # A new session of the same person goes on with the item left.
    end = _work(worker, worker.get(link_url(crowd.batch, session="s2")))
    assert CrowdAssignment.objects.filter(state="submitted").count() == 3


def test_it_screens_out_a_worker_who_fails_the_test_until_the_retake_delay(world: Any) -> None:
    crowd = crowd_setup(world.demo)
    worker = RecordingClient()
    entry = worker.get(link_url(crowd.batch))
    failed = _pass_test(worker, entry["Location"], crowd, answer="many")
    assert failed.status_code == 302
    assert failed["Location"] == COMPLETE + "SCR33N"
    assert not CrowdAssignment.objects.exists()

    # Back before the delay: screened out again, no new attempt.
    again = worker.get(link_url(crowd.batch, session="s2"))
    assert again["Location"] == COMPLETE + "SCR33N"
    assert QualificationAttempt.objects.count() == 1

    QualificationAttempt.objects.update(finished_at=timezone.now() - timedelta(hours=25))
    retake = worker.get(link_url(crowd.batch, session="s3"))
    assert retake["Location"].startswith("/crowd/qualify/")
    assert QualificationAttempt.objects.count() == 2


def test_it_refuses_a_qualification_with_missing_answers(world: Any) -> None:
    crowd = crowd_setup(world.demo)
    worker = RecordingClient()
    url = worker.get(link_url(crowd.batch))["Location"]
    response = worker.post(url, {"answer-0": "one"})
    assert response.status_code == 400
    assert QualificationAttempt.objects.get().finished_at is None


def test_it_refuses_an_answer_that_is_not_a_choice(world: Any) -> None:
    crowd = crowd_setup(world.demo, with_test=False)
    worker = RecordingClient()
    url = worker.get(link_url(crowd.batch))["Location"]
    assert worker.post(url, {"answer": "several"}).status_code == 400
    assert CrowdAssignment.objects.get().state == "assigned"


def test_it_answers_404_for_an_unknown_or_closed_batch(world: Any) -> None:
    crowd = crowd_setup(world.demo, with_test=False)
    client = Client()
    assert client.get(link_url(crowd.batch).replace(crowd.batch.public_id, "nope")).status_code == 404
    # A study-link batch is not reachable through the MTurk entry.
    assert client.get(mturk_url(crowd.batch)).status_code == 404
    crowd.batch.state = "closed"
    crowd.batch.save(update_fields=["state"])
    assert client.get(link_url(crowd.batch)).status_code == 404


# --- Mechanical Turk ------------------------------------------------------------------------
def test_it_shows_an_mturk_preview_that_cannot_submit(world: Any) -> None:
    crowd = crowd_setup(world.demo, provider="mturk")
    client = Client()
    preview = client.get(mturk_url(crowd.batch, assignment="ASSIGNMENT_ID_NOT_AVAILABLE"))
    assert preview.status_code == 200
    html = preview.content.decode()
    assert crowd.question.text in html
    assert "<form" not in html and "<button" not in html
    image = re.search(r'<img class="crowd-image" src="([^"]+)"', html).group(1)
    assert client.get(image).status_code == 200
    assert not CrowdWorker.objects.exists() and not CrowdAssignment.objects.exists()


def test_it_hands_an_mturk_answer_back_through_external_submit(world: Any) -> None:
    crowd = crowd_setup(world.demo, provider="mturk")
    worker = RecordingClient()
    entry = worker.get(mturk_url(crowd.batch, assignment="ASSIGN-7"))
    passed = _pass_test(worker, entry["Location"], crowd)
    task_url = passed["Location"]
    assert worker.get(task_url).status_code == 200
    done = worker.post(task_url, {"answer": "many"})
    assert done.status_code == 200
    html = done.content.decode()
    assert 'action="https://workersandbox.mturk.com/mturk/externalSubmit"' in html
    assert 'name="assignmentId" value="ASSIGN-7"' in html
    assert 'name="answer" value="many"' in html
    assert "<script>" not in html  # the form is sent by the static crowd.js
    # One item per HIT assignment: the same assignment cannot be worked again.
    assert worker.post(task_url, {"answer": "one"}).status_code == 403
    again = worker.get(mturk_url(crowd.batch, assignment="ASSIGN-7"))
    assert 'name="assignmentId" value="ASSIGN-7"' in again.content.decode()
    assignment = CrowdAssignment.objects.get()
    assert (assignment.assignment_id, assignment.hit_id, assignment.answer) == ("ASSIGN-7", "H1", "many")


def test_it_refuses_an_mturk_entry_that_submits_elsewhere(world: Any) -> None:
    crowd = crowd_setup(world.demo, provider="mturk")
    response = Client().get(mturk_url(crowd.batch, host="https://evil.example"))
    assert response.status_code == 400
    assert not CrowdWorker.objects.exists()


# --- gold -----------------------------------------------------------------------------------
def test_it_never_tells_gold_from_regular_items(world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    crowd = crowd_setup(world.demo, regular=3, hidden=2, gold_rate=0.5, with_test=True)
    draws = iter([0.0, 0.9] * 10)  # gold, regular, gold, regular …
    monkeypatch.setattr(services, "_draw", lambda: next(draws))
    worker = RecordingClient()
    entry = worker.get(link_url(crowd.batch))
    tasks: list[tuple[str, Any, Any]] = []
    response = _pass_test(worker, entry["Location"], crowd)
    while response.status_code == 302 and response["Location"].startswith("/crowd/task/"):
        url = response["Location"]
        token = _token(url)
        page = worker.get(url)
        image = worker.get(reverse("crowd_task_image", kwargs={"token": token}))
        tasks.append((token, page, image))
        response = worker.post(url, {"answer": "one"})
    assert response["Location"] == COMPLETE + "C0MPL3TE"

    assignments = list(CrowdAssignment.objects.order_by("id"))
    assert [a.is_gold for a in assignments] == [True, False, True, False, False]
    gold = [t for t, a in zip(tasks, assignments, strict=True) if a.is_gold]
    regular = [t for t, a in zip(tasks, assignments, strict=True) if not a.is_gold]

    def shape(token: str, page: Any, image: Any) -> tuple:
        # Lengths aside: tokens differ in length with their ids, pictures with their content.
        headers = {k: v for k, v in page.items() if k != "Content-Length"}
        image_headers = {k: v for k, v in image.items() if k != "Content-Length"}
        return (page.status_code, page.content.decode().replace(token, "TOKEN"), headers, image_headers)

    # Every task page is byte for byte the same once its token is set aside, headers included.
    shapes = {repr(shape(*t)) for t in tasks}
    assert len(shapes) == 1
    assert gold and regular
    # And nothing the worker received carries a gold answer, a gold flag or an item's name.
    gold_names = {g.media.original_name for g in crowd.hidden}
    for response in worker.seen:
        body = response.content if not response.streaming else b""
        text = body.decode(errors="replace").lower()
        assert "gold" not in text and "is_gold" not in text
        assert not any(name.lower() in text for name in gold_names)
        assert not any("gold" in f"{k}{v}".lower() for k, v in response.items())


def test_it_blocks_a_worker_who_misses_hidden_gold(world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    crowd = crowd_setup(world.demo, regular=4, hidden=3, gold_rate=1.0, with_test=False)
    monkeypatch.setattr(services, "_draw", lambda: 0.0)
    worker = RecordingClient()
    end = _work(worker, worker.get(link_url(crowd.batch)), answer="one")  # gold says "many"
    person = CrowdWorker.objects.get()
    assert person.blocked
    assert "0%" in person.block_reason
    assert CrowdAssignment.objects.filter(is_gold=True, gold_correct=False).count() == 3
    assert CrowdAssignment.objects.filter(is_gold=False).count() == 0
    assert end.status_code == 200 and b"No more work" in end.content
    assert b"No more work" in worker.get(link_url(crowd.batch, session="s2")).content


def test_it_does_not_block_a_worker_who_gets_gold_right(world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    crowd = crowd_setup(world.demo, regular=4, hidden=3, gold_rate=1.0, with_test=False)
    monkeypatch.setattr(services, "_draw", lambda: 0.0)
    worker = RecordingClient()
    end = _work(worker, worker.get(link_url(crowd.batch)), answer="many")
    assert end["Location"] == COMPLETE + "C0MPL3TE"
    assert not CrowdWorker.objects.get().blocked
    assert CrowdAssignment.objects.filter(is_gold=True, gold_correct=True).count() == 3


# --- framing --------------------------------------------------------------------------------
def test_it_lets_only_mturk_frame_the_worker_pages(world: Any) -> None:
    crowd = crowd_setup(world.demo, with_test=False)
    client = Client()
    entry = client.get(link_url(crowd.batch))
    task = client.get(entry["Location"])
    for response in (entry, task):
        csp = response["Content-Security-Policy"]
        assert "frame-ancestors https://www.mturk.com https://workersandbox.mturk.com" in csp
        assert "X-Frame-Options" not in response
        assert response["Referrer-Policy"] == "no-referrer"
    other = client.get(reverse("login"))
    assert other["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in other["Content-Security-Policy"]


# --- expiry ---------------------------------------------------------------------------------
def test_it_refuses_an_expired_assignment_and_gives_a_fresh_one_on_return(world: Any) -> None:
    crowd = crowd_setup(world.demo, with_test=False)
    worker = RecordingClient()
    url = worker.get(link_url(crowd.batch))["Location"]
    CrowdAssignment.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    for response in (
        worker.get(url),
        worker.get(reverse("crowd_task_image", kwargs={"token": _token(url)})),
        worker.post(url, {"answer": "one"}),
    ):
        assert response.status_code == 403
        assert "This assignment has expired" in response.content.decode()
    assert CrowdAssignment.objects.get().state == "assigned"
    # Back through the study link: a fresh assignment that can be answered.
    again = worker.get(link_url(crowd.batch))["Location"]
    assert again != url and worker.get(again).status_code == 200
    assert worker.post(again, {"answer": "one"}).status_code == 302
    assert list(CrowdAssignment.objects.values_list("state", flat=True)) == ["submitted", "assigned"]


# --- feedback -------------------------------------------------------------------------------
def test_it_shows_a_returning_worker_why_answers_were_rejected(world: Any) -> None:
    crowd = crowd_setup(world.demo, regular=5, with_test=False, items_per_session=2)
    worker = RecordingClient()
    _work(worker, worker.get(link_url(crowd.batch)))
    other = RecordingClient()
    _work(other, other.get(link_url(crowd.batch, pid="someone-else")))
    person = CrowdWorker.objects.get(external_id="worker-1")
    mine = list(CrowdAssignment.objects.filter(worker=person).order_by("id"))
    now = timezone.now()
    CrowdAssignment.objects.filter(pk=mine[0].pk).update(
        state="rejected", review_reason="The whole part counts, not only its tip.", reviewed_at=now
    )
    # A reason about a hidden gold answer would tell the worker which items are control items.
    CrowdAssignment.objects.filter(pk=mine[1].pk).update(
        state="rejected", review_reason="Control item answered wrongly.", reviewed_at=now, is_gold=True
    )
    CrowdAssignment.objects.exclude(worker=person).update(
        state="rejected", review_reason="Someone else's reason.", reviewed_at=now
    )

    first = worker.get(link_url(crowd.batch, session="s2"))
    page = worker.get(first["Location"]).content.decode()
    assert "Feedback on your earlier answers" in page
    assert "The whole part counts, not only its tip." in page
    assert "Control item" not in page and "Someone else" not in page
    second = worker.post(first["Location"], {"answer": "one"})
    assert "Feedback on your earlier answers" not in worker.get(second["Location"]).content.decode()


def test_it_shows_no_feedback_to_a_worker_without_rejections(world: Any) -> None:
    crowd = crowd_setup(world.demo, with_test=False)
    worker = RecordingClient()
    page = worker.get(worker.get(link_url(crowd.batch))["Location"]).content.decode()
    assert "Feedback" not in page
