"""Sign-in throttling on django-axes: the backend, the attempt store and the lockout page.

Wrong passwords are counted per account and per client address (the database keeps the counts, so
every web process sees the same ones). At the limit, that account and that client are locked out
for a while and the sign-in answers 429 with a page that says when to try again; the page reads the
same whether or not the account exists.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

LOCKOUT_TEMPLATE = "registration/locked_out.html"


class LoginThrottleBackend(AxesStandaloneBackend):
    """Refuses locked-out accounts and clients before any password is checked.

    A call without a request (a management command, a shell, the test client's `login()`) is no
    sign-in from a client: there is nobody to count or lock out, so it passes to the next backend
    instead of failing as axes' own backend does.
    """

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class AccountResetDatabaseHandler(AxesDatabaseHandler):
    """Axes' database handler, except that a successful sign-in clears only that account's failures.

    Axes clears every failure matching the account *or* the client address; with both as lockout
    parameters, someone holding one account could then sign in to it every few guesses and wipe
    the count of the guesses made at other accounts from the same address.
    """

    def reset_user_attempts(self, request: HttpRequest, credentials: dict | None = None) -> int:
        username = get_client_username(request, credentials)
        if not username:
            return 0
        count, _ = AccessAttempt.objects.filter(username=username).delete()
        return count


def locked_until(request: HttpRequest, credentials: dict | None) -> datetime:
    """When the lockout ends at the latest: cool-off after the newest failure that counts against
    this account or this client (failures during a lockout are not recorded, so this does not move)."""
    cool_off = get_cool_off(request) or timedelta(0)
    handler = AxesProxyHandler.get_implementation()
    newest = [
        attempts.aggregate(newest=Max("attempt_time"))["newest"]
        for attempts in handler.get_user_attempts(request, credentials)
    ]
    known = [moment for moment in newest if moment is not None]
    return (max(known) if known else timezone.now()) + cool_off


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | dict | None = None, credentials: dict | None = None
) -> HttpResponse:
    """The lockout page (AXES_LOCKOUT_CALLABLE): 429 with Retry-After and the time to try again.

    Axes' async middleware passes the credentials where the original response belongs; either
    position is accepted.
    """
    if credentials is None and isinstance(original_response, dict):
        credentials = original_response
    until = locked_until(request, credentials)
    seconds = max(0, math.ceil((until - timezone.now()).total_seconds()))
    response = render(
        request,
        LOCKOUT_TEMPLATE,
        {"locked_until": until, "minutes": max(1, math.ceil(seconds / 60))},
        status=429,
    )
    response["Retry-After"] = str(seconds)
    return response
