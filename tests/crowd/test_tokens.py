"""Signed worker tokens: forged, expired, another worker's and replayed tokens, and tokens of expired
assignments, are refused, on the pages as well as in ``crowd.tokens``."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crowd.models import CrowdAssignment, CrowdWorker
from crowd.tokens import ASSIGNMENT_SALT, TokenRefused, assignment_from_token, assignment_token
from tests.crowd.helpers import crowd_setup, link_url


@pytest.fixture
def assignment(world: Any) -> CrowdAssignment:
    crowd = crowd_setup(world.demo, with_test=False)
    Client().get(link_url(crowd.batch))
    return CrowdAssignment.objects.get()


def _refused(token: str, message: str) -> None:
    client = Client()
    names = ("crowd_task", "crowd_task_image", "crowd_task_overlay")
    for url in (reverse(name, kwargs={"token": token}) for name in names):
        response = client.get(url)
        assert response.status_code == 403, url
        assert message in response.content.decode()
    assert client.post(reverse("crowd_task", kwargs={"token": token}), {"answer": "one"}).status_code == 403
    with pytest.raises(TokenRefused, match=message):
        assignment_from_token(token)


def test_it_accepts_the_assignments_own_token(assignment: CrowdAssignment) -> None:
    assert assignment_from_token(assignment_token(assignment)) == assignment


def test_it_refuses_a_forged_token(assignment: CrowdAssignment) -> None:
    token = assignment_token(assignment)
    forged = signing.dumps(
        {"a": assignment.pk, "w": assignment.worker_id, "n": assignment.token_nonce}, key="not-our-secret"
    )
    _refused(forged, "not valid")
    _refused(token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "not valid")
    # Signed by us, but for another purpose (another salt).
    _refused(signing.dumps({"a": assignment.pk, "w": assignment.worker_id, "n": assignment.token_nonce}), "not valid")
    assert CrowdAssignment.objects.get().state == "assigned"


def test_it_refuses_an_expired_token(assignment: CrowdAssignment, monkeypatch: pytest.MonkeyPatch) -> None:
    token = assignment_token(assignment)
    later = time.time() + 86400 + 60
    monkeypatch.setattr(signing.time, "time", lambda: later)
    _refused(token, "expired")


def test_it_refuses_another_workers_token(assignment: CrowdAssignment) -> None:
    other = CrowdWorker.objects.create(organization=assignment.worker.organization, provider="link", external_id="x")
    token = signing.dumps({"a": assignment.pk, "w": other.pk, "n": assignment.token_nonce}, salt=ASSIGNMENT_SALT)
    _refused(token, "another worker")


def test_it_refuses_a_replayed_token(assignment: CrowdAssignment) -> None:
    token = assignment_token(assignment)
    url = reverse("crowd_task", kwargs={"token": token})
    assert Client().post(url, {"answer": "many"}).status_code == 302
    _refused(token, "already been used")
    assignment.refresh_from_db()
    assert assignment.answer == "many"
    # A token minted with the old nonce after the submit is refused too.
    stale = signing.dumps({"a": assignment.pk, "w": assignment.worker_id, "n": "old"}, salt=ASSIGNMENT_SALT)
    with pytest.raises(TokenRefused):
        assignment_from_token(stale)


def test_it_refuses_the_token_of_an_expired_assignment(assignment: CrowdAssignment) -> None:
    token = assignment_token(assignment)
    CrowdAssignment.objects.filter(pk=assignment.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    _refused(token, "This assignment has expired")
    assert CrowdAssignment.objects.get().state == "assigned"
