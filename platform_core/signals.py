"""Pushes ``access.changed`` to a user's open sockets when their access may have ended.

The receivers hang on the models rather than on the services, so every path that changes access
is covered, whoever takes it: the members page and the REST member API (platform_core.members),
Django admin (one row, bulk deletion, the organisation's membership inline), cascades (a deleted
organisation or user), invitations raising a role, the shell. What each covers:

- Membership saved (a role change) or deleted (removal): the user's sockets check again; a removed
  member's close with 4404, a changed role is read again (what the socket forwards may change).
- User saved with ``is_active`` or ``password`` among the saved fields (a full save counts):
  deactivation and password changes close the sockets of sessions that no longer hold (4401).
  ``last_login`` updates at sign-in are left alone.
- Session row deleted (sign-out flushes it, so does Django's own check after a password change)
  and ``user_logged_out`` (for session engines without rows): that session's sockets close.
  Expired rows removed by ``clearsessions`` push nothing: their sessions already ended, and the
  sockets' periodic check reads them as gone. (Any receiver on Session makes Django load the rows
  it deletes instead of one DELETE; clearsessions then reads the expired rows once.)

Events go out after the change commits (``publish_after_commit``). ``QuerySet.update`` and raw SQL
send no signal: the sockets' periodic check (``TenantJsonConsumer.recheck_seconds``) catches those.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model, user_logged_out
from django.core.exceptions import ValidationError
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from platform_core.models import Membership
from platform_core.realtime import publish_access_changed

ACCESS_FIELDS = frozenset({"is_active", "password"})


@receiver(post_save, sender=Membership, dispatch_uid="platform_core.access.membership_saved")
def membership_saved(sender: Any, instance: Membership, created: bool, raw: bool, using: str, **kwargs: Any) -> None:
    if raw or created:
        return  # a new membership ends nobody's access
    publish_access_changed(instance.user_id, using=using)


@receiver(post_delete, sender=Membership, dispatch_uid="platform_core.access.membership_deleted")
def membership_deleted(sender: Any, instance: Membership, using: str, **kwargs: Any) -> None:
    publish_access_changed(instance.user_id, using=using)


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="platform_core.access.user_saved")
def user_saved(
    sender: Any, instance: Any, created: bool, raw: bool, using: str, update_fields: Any = None, **kwargs: Any
) -> None:
    if raw or created:
        return
    if update_fields is not None and not ACCESS_FIELDS.intersection(update_fields):
        return
    publish_access_changed(instance.pk, using=using)


@receiver(post_delete, sender="sessions.Session", dispatch_uid="platform_core.access.session_deleted")
def session_deleted(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    if instance.expire_date <= timezone.now():
        return
    user_id = instance.get_decoded().get(SESSION_KEY)
    if user_id is None:
        return  # an anonymous session has no sockets
    try:
        user_id = get_user_model()._meta.pk.to_python(user_id)
    except (ValidationError, TypeError, ValueError):
        return
    publish_access_changed(user_id, ended_session_key=instance.session_key, using=using)


@receiver(user_logged_out, dispatch_uid="platform_core.access.signed_out")
def signed_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and session_key:
        publish_access_changed(user.pk, ended_session_key=session_key)
