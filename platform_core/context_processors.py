from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from platform_core.selectors import memberships_of


def memberships(request: HttpRequest) -> dict[str, Any]:
    """The user's organisations, for the organisation switcher in the page header."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"my_memberships": []}
    return {"my_memberships": memberships_of(user), "tenant": getattr(request, "tenant", None)}
