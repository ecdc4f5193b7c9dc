"""Members of an organisation: invitations by e-mail or link, role changes and removal.

An invitation link carries a signed token (Django's signing, with its own salt) naming the
invitation row; the link expires with the row's ``expires_at`` and works once. The role rules are
the admin's (platform_core.permissions): managers grant only roles below their own, only owners
appoint owners and managers, nobody changes their own membership.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from platform_core.models import Invitation, Membership, Role
from platform_core.permissions import grantable_roles, may_change_membership
from platform_core.tenancy import Tenant

INVITATION_SALT = "platform_core.invitation"


def _check_grant(tenant: Tenant, actor: Any, role: str) -> Role:
    try:
        role = Role(role)
    except ValueError:
        raise ValidationError({"role": f"Unknown role {role!r}."}) from None
    if role not in grantable_roles(actor, tenant.org):
        raise PermissionDenied("Your role does not allow granting this role.")
    return role


def _created_stamp(invitation: Invitation) -> int:
    return round(invitation.created_at.timestamp() * 1_000_000)


def invitation_token(invitation: Invitation) -> str:
    # The organisation and the creation time pin the token to this very row: should a row id ever
    # come back (a database restored or rebuilt under the same secret key), an old link names nothing.
    # Signed without a timestamp (expiry is the row's expires_at): the same invitation always has
    # the same link, wherever and whenever it is shown.
    payload = {"i": invitation.pk, "o": invitation.organization_id, "t": _created_stamp(invitation)}
    return signing.Signer(salt=INVITATION_SALT).sign_object(payload, compress=True)


def invitation_url(invitation: Invitation, *, request: Any = None) -> str:
    path = reverse("invitation_accept", kwargs={"token": invitation_token(invitation)})
    return request.build_absolute_uri(path) if request is not None else path


def invitation_create(*, tenant: Tenant, actor: Any, role: str, email: str = "", request: Any = None) -> Invitation:
    """Invite someone by e-mail (``email`` given: the link is sent there) or make a shareable link."""
    role = _check_grant(tenant, actor, role)
    email = email.strip().lower()
    if email:
        validate_email(email)
        if Membership.objects.filter(organization=tenant.org, user__email__iexact=email).exists():
            raise ValidationError({"email": "Someone with this e-mail address is already a member."})
    invitation = Invitation.objects.create(
        organization=tenant.org,
        email=email,
        role=role,
        invited_by=actor,
        expires_at=timezone.now() + timedelta(days=settings.INVITATION_DAYS),
    )
    if email:
        url = invitation_url(invitation, request=request)
        transaction.on_commit(
            lambda: send_mail(
                subject=f"Join {tenant.org.name} on the annotation platform",
                message=(
                    f"{actor.get_username()} invites you to join {tenant.org.name} as {role.label.lower()}.\n\n"
                    f"Accept within {settings.INVITATION_DAYS} days: {url}\n"
                ),
                from_email=None,
                recipient_list=[email],
            )
        )
    return invitation


def invitation_revoke(*, tenant: Tenant, actor: Any, invitation: Invitation) -> None:
    if not grantable_roles(actor, tenant.org):
        raise PermissionDenied("Only owners and managers manage invitations.")
    invitation.delete()


def invitation_from_token(token: str) -> Invitation:
    """The open invitation a token names; ValidationError for a bad, used, revoked or expired link."""
    try:
        data = signing.Signer(salt=INVITATION_SALT).unsign_object(token)
        invitation = Invitation.objects.select_related("organization").get(pk=data["i"], organization_id=data["o"])
        if _created_stamp(invitation) != data["t"]:
            raise Invitation.DoesNotExist
    except (signing.BadSignature, KeyError, TypeError, ValueError, Invitation.DoesNotExist):
        raise ValidationError("This invitation link is not valid: it may have been revoked.", code="invalid") from None
    if invitation.accepted_at is not None:
        raise ValidationError("This invitation has already been used.", code="used")
    if invitation.expires_at <= timezone.now():
        raise ValidationError("This invitation has expired: ask for a new one.", code="expired")
    return invitation


def invitation_accept(*, token: str, user: Any = None, username: str = "", password: str = "") -> Membership:
    """Accept an invitation as the signed-in ``user``, or create the account from username + password."""
    with transaction.atomic():
        invitation = invitation_from_token(token)
        # Lock the row: two clicks on one link must not both succeed.
        invitation = Invitation.objects.select_for_update().select_related("organization").get(pk=invitation.pk)
        if invitation.accepted_at is not None:
            raise ValidationError("This invitation has already been used.", code="used")
        if user is None:
            user = _create_account(username=username, password=password, email=invitation.email)
        elif invitation.email and user.email and user.email.lower() != invitation.email:
            raise ValidationError("This invitation was sent to another e-mail address.", code="wrong_user")
        membership, created = Membership.objects.get_or_create(
            user=user, organization=invitation.organization, defaults={"role": invitation.role}
        )
        if not created and Role(membership.role).rank < Role(invitation.role).rank:
            membership.role = invitation.role
            membership.save(update_fields=["role"])
        invitation.accepted_at, invitation.accepted_by = timezone.now(), user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership


def _create_account(*, username: str, password: str, email: str) -> Any:
    from django.contrib.auth.password_validation import validate_password

    user_model = get_user_model()
    username = username.strip()
    if not username:
        raise ValidationError({"username": "Choose a username."})
    if user_model.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": "This username is taken: sign in first if it is yours."})
    user = user_model(username=username, email=email)
    user.full_clean(exclude=["password"])
    validate_password(password, user)
    user.set_password(password)
    user.save()
    return user


def _keep_an_owner(membership: Membership) -> None:
    """Refuse to take away the organisation's last owner (the caller holds the transaction)."""
    if membership.role != Role.OWNER:
        return
    owners = Membership.objects.select_for_update().filter(organization_id=membership.organization_id, role=Role.OWNER)
    if not owners.exclude(pk=membership.pk).exists():
        raise ValidationError(
            "An organisation keeps at least one owner: appoint another owner first.", code="last_owner"
        )


def membership_change_role(*, tenant: Tenant, actor: Any, membership: Membership, role: str) -> Membership:
    if not may_change_membership(actor, membership):
        raise PermissionDenied("You may not change this member's role.")
    role = _check_grant(tenant, actor, role)
    with transaction.atomic():
        if role != Role.OWNER:
            _keep_an_owner(membership)
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def membership_remove(*, tenant: Tenant, actor: Any, membership: Membership) -> None:
    """Remove a member; their tasks stay, unassigned, for someone else."""
    if not may_change_membership(actor, membership):
        raise PermissionDenied("You may not remove this member.")
    from annotation.models import Task

    with transaction.atomic():
        _keep_an_owner(membership)
        Task.objects.for_org(tenant.org).filter(assignee=membership.user).update(assignee=None)
        membership.delete()
