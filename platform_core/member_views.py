"""Members page (roles, removal, invitations), the invitation accept page and the profile page
with the user's API token."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework.authtoken.models import Token

from platform_core import members
from platform_core.models import Invitation, Membership, Role
from platform_core.permissions import grantable_roles, may_change_membership
from platform_core.tenancy import get_for_org_or_404, member_required


class InvitationForm(forms.Form):
    email = forms.EmailField(required=False, help_text="Leave empty to make a link you share yourself.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)


class AccountForm(forms.Form):
    username = forms.CharField(max_length=150)
    password = forms.CharField(widget=forms.PasswordInput, min_length=8)


def _members_page(request: HttpRequest, form: InvitationForm, new_link: str = "", status: int = 200) -> HttpResponse:
    tenant = request.tenant
    grantable = grantable_roles(request.user, tenant.org)
    form.fields["role"].choices = [(r.value, r.label) for r in grantable]
    rows = [
        (m, may_change_membership(request.user, m))
        for m in Membership.objects.for_org(tenant.org).select_related("user").order_by("user__username")
    ]
    invitations = (
        Invitation.objects.for_org(tenant.org)
        .filter(accepted_at__isnull=True, expires_at__gt=timezone.now())
        .select_related("invited_by")
    )
    context = {
        "rows": rows,
        "grantable": grantable,
        "invitations": invitations,
        "form": form,
        "new_link": new_link,
    }
    return render(request, "platform_core/members.html", context, status=status)


@member_required(role=Role.MANAGER)
@require_http_methods(["GET", "POST"])
def members_page(request: HttpRequest) -> HttpResponse:
    """Everyone in the organisation; POST invites someone (by e-mail, or as a link to share)."""
    form = InvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            invitation = members.invitation_create(
                tenant=request.tenant, actor=request.user, request=request, **form.cleaned_data
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        except PermissionDenied as exc:
            form.add_error("role", str(exc))
        else:
            link = members.invitation_url(invitation, request=request)
            if invitation.email:
                messages.success(request, f"Invitation sent to {invitation.email}.")
                return redirect("members", org_slug=request.tenant.org.slug)
            return _members_page(request, InvitationForm(), new_link=link)
    return _members_page(request, form, status=400 if form.errors else 200)


@member_required(role=Role.MANAGER)
@require_POST
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = get_for_org_or_404(Membership.objects.select_related("user"), request.tenant.org, pk=membership_id)
    try:
        members.membership_change_role(
            tenant=request.tenant, actor=request.user, membership=membership, role=request.POST.get("role", "")
        )
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    else:
        messages.success(request, f"{membership.user.get_username()} is now {membership.get_role_display().lower()}.")
    return redirect("members", org_slug=request.tenant.org.slug)


@member_required(role=Role.MANAGER)
@require_POST
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = get_for_org_or_404(Membership.objects.select_related("user"), request.tenant.org, pk=membership_id)
    try:
        members.membership_remove(tenant=request.tenant, actor=request.user, membership=membership)
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    else:
        messages.success(request, f"{membership.user.get_username()} removed; their tasks are unassigned.")
    return redirect("members", org_slug=request.tenant.org.slug)


@member_required(role=Role.MANAGER)
@require_POST
def invitation_revoke(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = get_for_org_or_404(Invitation, request.tenant.org, pk=invitation_id)
    members.invitation_revoke(tenant=request.tenant, actor=request.user, invitation=invitation)
    messages.success(request, "Invitation revoked: its link no longer works.")
    return redirect("members", org_slug=request.tenant.org.slug)


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """Join with a signed-in account, or create one; the link works once and expires."""
    try:
        invitation = members.invitation_from_token(token)
    except ValidationError as exc:
        return render(request, "platform_core/invitation_accept.html", {"error": exc.messages[0]}, status=410)
    signed_in = request.user.is_authenticated
    # A signed-in user joins with one button: the account form is for new people only.
    form = AccountForm(request.POST if request.method == "POST" and not signed_in else None)
    join_error = ""
    if request.method == "POST":
        membership = None
        try:
            if signed_in:
                membership = members.invitation_accept(token=token, user=request.user)
            elif form.is_valid():
                membership = members.invitation_accept(token=token, **form.cleaned_data)
                login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
        except ValidationError as exc:
            if signed_in:
                join_error = " ".join(exc.messages)
            else:
                form.add_error(None, exc)
        if membership is not None:
            messages.success(request, f"Welcome to {membership.organization.name}.")
            return redirect("dashboard", org_slug=membership.organization.slug)
    context = {"invitation": invitation, "form": form, "join_error": join_error}
    failed = join_error or form.errors
    return render(request, "platform_core/invitation_accept.html", context, status=400 if failed else 200)


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    """The user's API token: create (or replace) and revoke. The key is shown once, when made."""
    new_key = ""
    action = request.POST.get("action")
    if request.method == "POST" and action not in ("create", "revoke"):
        return HttpResponseBadRequest("Unknown action: create or revoke the token.")
    if request.method == "POST":
        Token.objects.filter(user=request.user).delete()
        if action == "create":
            new_key = Token.objects.create(user=request.user).key
            messages.success(request, "New API token created: copy it now, it is shown only once.")
        else:
            messages.success(request, "API token revoked.")
    token = Token.objects.filter(user=request.user).first()
    context = {"token": token, "new_key": new_key}
    response = render(request, "platform_core/profile.html", context)
    response["Cache-Control"] = "no-store"
    return response
