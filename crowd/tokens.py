"""Signed tokens that carry a crowd worker to their own assignment or qualification attempt.

A worker has no session (inside MTurk's iframe a SameSite cookie is not even sent): the token in the
URL is the credential. It is ``django.core.signing`` over ``{kind id, worker id, nonce}`` with a salt
per kind, and it expires after ``CROWD_TOKEN_MAX_AGE_SECONDS``. A token is refused when its signature
is wrong, when it is too old, when its worker is not the row's worker, when its nonce is not the
row's current nonce (the nonce is rotated on submit, so a used token cannot be replayed), and, for an
assignment, when the assignment has expired (``CrowdAssignment.expires_at``: its unit has gone back
to the pool).
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.utils import timezone

from crowd.models import CrowdAssignment, QualificationAttempt

ASSIGNMENT_SALT = "crowd.assignment"
ATTEMPT_SALT = "crowd.qualification"
EXPIRED_MESSAGE = "This assignment has expired. Please start again from the study or HIT page."


class TokenRefused(Exception):
    """The reason is shown to the worker: it names no object."""


def assignment_token(assignment: CrowdAssignment) -> str:
    return signing.dumps(
        {"a": assignment.pk, "w": assignment.worker_id, "n": assignment.token_nonce}, salt=ASSIGNMENT_SALT
    )


def attempt_token(attempt: QualificationAttempt) -> str:
    return signing.dumps({"q": attempt.pk, "w": attempt.worker_id, "n": attempt.token_nonce}, salt=ATTEMPT_SALT)


def _load(token: str, *, salt: str, key: str) -> dict:
    try:
        payload = signing.loads(token, salt=salt, max_age=settings.CROWD_TOKEN_MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        raise TokenRefused("This link has expired. Please start again from the study or HIT page.") from None
    except signing.BadSignature:
        raise TokenRefused("This link is not valid.") from None
    if not isinstance(payload, dict) or not all(isinstance(payload.get(k), int) for k in (key, "w")):
        raise TokenRefused("This link is not valid.")
    return payload


def _check(row: CrowdAssignment | QualificationAttempt | None, payload: dict) -> None:
    if row is None:
        raise TokenRefused("This link is not valid.")
    if row.worker_id != payload["w"]:
        raise TokenRefused("This link belongs to another worker.")
    if row.token_nonce != payload.get("n"):
        raise TokenRefused("This link has already been used.")


def assignment_from_token(token: str) -> CrowdAssignment:
    payload = _load(token, salt=ASSIGNMENT_SALT, key="a")
    assignment = (
        CrowdAssignment.objects.select_related(
            "batch__project", "batch__question__label", "batch__label", "worker", "media", "annotation"
        )
        .filter(pk=payload["a"])
        .first()
    )
    _check(assignment, payload)
    if assignment.state != CrowdAssignment.State.ASSIGNED:
        raise TokenRefused("This link has already been used.")
    if assignment.expires_at is not None and assignment.expires_at <= timezone.now():
        raise TokenRefused(EXPIRED_MESSAGE)
    return assignment


def attempt_from_token(token: str) -> QualificationAttempt:
    payload = _load(token, salt=ATTEMPT_SALT, key="q")
    attempt = (
        QualificationAttempt.objects.select_related("test__question__label", "test__label", "worker", "batch")
        .filter(pk=payload["q"])
        .first()
    )
    _check(attempt, payload)
    if attempt.finished_at is not None:
        raise TokenRefused("This link has already been used.")
    return attempt
