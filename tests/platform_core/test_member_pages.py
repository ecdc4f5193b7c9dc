"""The members page (invitations, role changes, removal), the invitation accept page and the profile
page with the user's API token."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.core import mail, signing
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import Task
from platform_core import members
from platform_core.models import Invitation, Membership, Role
from tests.conftest import World
from tests.factories import PASSWORD, MembershipFactory, UserFactory

NEW_PASSWORD = "a long and unusual passphrase"


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page(name: str, org_slug: str = "demo-lab", **kwargs: Any) -> str:
    return reverse(name, kwargs={"org_slug": org_slug, **kwargs})


def flashes(response: Any) -> list[str]:
    """The messages this response added (not those left over from earlier requests)."""
    return [str(message) for message in get_messages(response.wsgi_request)._queued_messages]


def membership(org: Any, user: Any) -> Membership:
    return Membership.objects.get(organization=org, user=user)


def accept_url(invitation: Invitation) -> str:
    return members.invitation_url(invitation)


def opened_by(link: str) -> Invitation:
    """The invitation an accept link opens. Links are compared this way, not as text: the signature
    carries the second it was made in."""
    match = re.fullmatch(r"(?:http://testserver)?/invitations/([^/]+)/", link)
    assert match, link
    return members.invitation_from_token(match.group(1))


def link_invitation(world: World, role: str = Role.ANNOTATOR, email: str = "") -> Invitation:
    return Invitation.objects.create(
        organization=world.demo.org,
        role=role,
        email=email,
        invited_by=world.owner,
        expires_at=timezone.now() + timedelta(days=7),
    )


# --- the members page ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "manager"])
def test_it_lists_the_members_and_open_invitations(world: World, role: str) -> None:
    world.annotator.email = "ann@example.org"
    world.annotator.save(update_fields=["email"])
    response = client_for(getattr(world, role)).get(page("members"))
    assert response.status_code == 200
    body = response.content.decode()
    for name in ("owner", "manager", "reviewer", "annotator", "ann@example.org"):
        assert name in body
    assert "outsider" not in body
    assert page("invitation_revoke", invitation_id=world.demo.invitation.pk) in body
    assert page("invitation_revoke", invitation_id=world.other.invitation.pk) not in body


def test_it_leaves_expired_invitations_out_of_the_open_ones(world: World) -> None:
    Invitation.objects.filter(pk=world.demo.invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    body = client_for(world.owner).get(page("members")).content.decode()
    assert page("invitation_revoke", invitation_id=world.demo.invitation.pk) not in body


def test_it_offers_a_manager_only_the_changes_the_role_rules_allow(world: World) -> None:
    body = client_for(world.manager).get(page("members")).content.decode()
    # Reviewer and annotator rows are changeable; the owner's and the manager's own are not.
    assert page("member_role", membership_id=membership(world.demo.org, world.annotator).pk) in body
    assert page("member_role", membership_id=membership(world.demo.org, world.reviewer).pk) in body
    assert page("member_role", membership_id=membership(world.demo.org, world.owner).pk) not in body
    assert page("member_remove", membership_id=membership(world.demo.org, world.manager).pk) not in body
    assert '<option value="owner"' not in body and '<option value="manager"' not in body


@pytest.mark.parametrize("role", ["reviewer", "annotator"])
def test_it_refuses_the_members_page_below_manager(world: World, role: str) -> None:
    client = client_for(getattr(world, role))
    assert client.get(page("members")).status_code == 403
    response = client.post(page("members"), {"email": "x@example.org", "role": "annotator"})
    assert response.status_code == 403
    assert not Invitation.objects.filter(email="x@example.org").exists()


def test_it_invites_by_email_and_mails_the_link(world: World, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(world.manager).post(page("members"), {"email": "New@Example.org", "role": "reviewer"})
    assert response.status_code == 302
    assert response["Location"] == page("members")
    assert flashes(response) == ["Invitation sent to new@example.org."]
    invitation = Invitation.objects.get(email="new@example.org")
    assert (invitation.organization, invitation.role, invitation.invited_by) == (
        world.demo.org,
        Role.REVIEWER,
        world.manager,
    )
    assert timedelta(days=6, hours=23) < invitation.expires_at - timezone.now() <= timedelta(days=7)
    [message] = mail.outbox
    assert message.to == ["new@example.org"]
    assert "Demo Lab" in message.subject
    [link] = re.findall(r"http://testserver(/invitations/[^/\s]+/)", message.body)
    assert opened_by(link) == invitation
    page_body = Client().get(link).content.decode()
    assert "Join Demo Lab" in page_body and "reviewer" in page_body


def test_it_makes_a_shareable_link_without_mail(world: World, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(world.owner).post(page("members"), {"email": "", "role": "manager"})
    assert response.status_code == 200
    invitation = Invitation.objects.get(organization=world.demo.org, role=Role.MANAGER)
    assert invitation.email == ""
    body = response.content.decode()
    assert 'data-testid="invitation-link"' in body
    [link] = re.findall(r'data-testid="invitation-link".*?value="([^"]+)"', body, flags=re.DOTALL)
    assert opened_by(link) == invitation
    assert mail.outbox == []


@pytest.mark.parametrize("role", ["owner", "manager"])
def test_it_refuses_a_manager_inviting_at_or_above_their_own_role(world: World, role: str) -> None:
    response = client_for(world.manager).post(page("members"), {"email": "boss@example.org", "role": role})
    assert response.status_code == 400
    assert "Your role does not allow granting this role." in response.content.decode()
    assert not Invitation.objects.filter(email="boss@example.org").exists()


@pytest.mark.parametrize(("email", "error"), [("annotator@example.org", "already a member"), ("nope", "valid email")])
def test_it_refuses_a_bad_or_member_email(world: World, email: str, error: str) -> None:
    world.annotator.email = "annotator@example.org"
    world.annotator.save(update_fields=["email"])
    response = client_for(world.owner).post(page("members"), {"email": email, "role": "annotator"})
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not Invitation.objects.filter(email=email).exists()


def test_it_revokes_an_invitation_and_its_link_stops_working(world: World) -> None:
    link = accept_url(world.demo.invitation)
    assert Client().get(link).status_code == 200
    response = client_for(world.manager).post(page("invitation_revoke", invitation_id=world.demo.invitation.pk))
    assert response.status_code == 302
    assert flashes(response) == ["Invitation revoked: its link no longer works."]
    assert not Invitation.objects.filter(pk=world.demo.invitation.pk).exists()
    response = Client().post(link, {"username": "late", "password": NEW_PASSWORD})
    assert response.status_code == 410
    assert "This invitation link is not valid: it may have been revoked." in response.content.decode()
    assert not get_user_model().objects.filter(username="late").exists()


# --- roles and removal ---------------------------------------------------------------------------


def test_it_changes_a_members_role(world: World) -> None:
    target = membership(world.demo.org, world.annotator)
    response = client_for(world.manager).post(page("member_role", membership_id=target.pk), {"role": "reviewer"})
    assert response.status_code == 302
    assert flashes(response) == ["annotator is now reviewer."]
    target.refresh_from_db()
    assert target.role == Role.REVIEWER


@pytest.mark.parametrize(
    ("actor", "target", "role", "error"),
    [
        ("manager", "annotator", "owner", "Your role does not allow granting this role."),
        ("manager", "annotator", "manager", "Your role does not allow granting this role."),
        ("manager", "owner", "annotator", "You may not change this member's role."),
        ("owner", "owner", "manager", "You may not change this member's role."),
        ("owner", "annotator", "emperor", "Unknown role 'emperor'."),
    ],
)
def test_it_refuses_role_changes_outside_the_rules(
    world: World, actor: str, target: str, role: str, error: str
) -> None:
    row = membership(world.demo.org, getattr(world, target))
    before = row.role
    response = client_for(getattr(world, actor)).post(page("member_role", membership_id=row.pk), {"role": role})
    assert response.status_code == 302
    assert flashes(response) == [error]
    row.refresh_from_db()
    assert row.role == before


def test_it_lets_an_owner_appoint_and_demote_another_owner(world: World) -> None:
    row = membership(world.demo.org, world.manager)
    client = client_for(world.owner)
    client.post(page("member_role", membership_id=row.pk), {"role": "owner"})
    row.refresh_from_db()
    assert row.role == Role.OWNER
    client.post(page("member_role", membership_id=row.pk), {"role": "manager"})
    row.refresh_from_db()
    assert row.role == Role.MANAGER


def test_it_keeps_the_last_owner(world: World) -> None:
    # Only a superuser passes the "not your own, not above you" rules for the owner's row.
    admin = UserFactory(username="root", is_superuser=True)
    MembershipFactory(organization=world.demo.org, user=admin, role=Role.MANAGER)
    owner = membership(world.demo.org, world.owner)
    client = client_for(admin)
    response = client.post(page("member_role", membership_id=owner.pk), {"role": "manager"})
    assert flashes(response) == ["An organisation keeps at least one owner: appoint another owner first."]
    response = client.post(page("member_remove", membership_id=owner.pk))
    assert flashes(response) == ["An organisation keeps at least one owner: appoint another owner first."]
    owner.refresh_from_db()
    assert owner.role == Role.OWNER

    # With a second owner, the first may go.
    second = membership(world.demo.org, world.manager)
    client.post(page("member_role", membership_id=second.pk), {"role": "owner"})
    response = client.post(page("member_remove", membership_id=owner.pk))
    assert flashes(response) == ["owner removed; their tasks are unassigned."]
    assert not Membership.objects.filter(pk=owner.pk).exists()


def test_it_removes_a_member_and_unassigns_their_tasks(world: World) -> None:
    row = membership(world.demo.org, world.annotator)
    response = client_for(world.manager).post(page("member_remove", membership_id=row.pk))
    assert response.status_code == 302
    assert flashes(response) == ["annotator removed; their tasks are unassigned."]
    assert not Membership.objects.filter(pk=row.pk).exists()
    world.demo.task.refresh_from_db()
    assert world.demo.task.assignee is None
    # The other organisation's task of its own member is untouched, and the removed user is out.
    assert Task.objects.get(pk=world.other.task.pk).assignee == world.outsider
    assert client_for(world.annotator).get(page("dashboard")).status_code == 404


@pytest.mark.parametrize(("actor", "target"), [("manager", "owner"), ("manager", "manager"), ("owner", "owner")])
def test_it_refuses_removals_outside_the_rules(world: World, actor: str, target: str) -> None:
    row = membership(world.demo.org, getattr(world, target))
    response = client_for(getattr(world, actor)).post(page("member_remove", membership_id=row.pk))
    assert flashes(response) == ["You may not remove this member."]
    assert Membership.objects.filter(pk=row.pk).exists()


@pytest.mark.parametrize("role", ["reviewer", "annotator"])
def test_it_refuses_role_changes_and_removal_below_manager(world: World, role: str) -> None:
    row = membership(world.demo.org, world.annotator if role == "reviewer" else world.reviewer)
    client = client_for(getattr(world, role))
    assert client.post(page("member_role", membership_id=row.pk), {"role": "owner"}).status_code == 403
    assert client.post(page("member_remove", membership_id=row.pk)).status_code == 403
    assert client.post(page("invitation_revoke", invitation_id=world.demo.invitation.pk)).status_code == 403
    row.refresh_from_db()
    assert Invitation.objects.filter(pk=world.demo.invitation.pk).exists()


# --- outsiders -----------------------------------------------------------------------------------


def members_routes(world: World, side: Any) -> list[tuple[str, str]]:
    own = side.membership.pk
    return [
        ("get", page("members", org_slug=side.org.slug)),
        ("post", page("members", org_slug=side.org.slug)),
        ("post", page("member_role", org_slug=side.org.slug, membership_id=own)),
        ("post", page("member_remove", org_slug=side.org.slug, membership_id=own)),
        ("post", page("invitation_revoke", org_slug=side.org.slug, invitation_id=side.invitation.pk)),
    ]


@pytest.mark.parametrize("index", range(5))
def test_it_answers_404_to_an_outsider_on_every_members_route(world: World, index: int) -> None:
    method, url = members_routes(world, world.demo)[index]
    response = getattr(client_for(world.outsider), method)(url, {"role": "owner", "email": "", "action": "x"})
    assert response.status_code == 404
    assert Invitation.objects.filter(pk=world.demo.invitation.pk).exists()
    assert membership(world.demo.org, world.annotator).role == Role.ANNOTATOR
    assert Invitation.objects.filter(organization=world.demo.org).count() == 1


def test_it_answers_404_for_another_organisations_member_or_invitation(world: World) -> None:
    client = client_for(world.owner)
    foreign = membership(world.other.org, world.outsider)
    assert client.post(page("member_role", membership_id=foreign.pk), {"role": "annotator"}).status_code == 404
    assert client.post(page("member_remove", membership_id=foreign.pk)).status_code == 404
    assert client.post(page("invitation_revoke", invitation_id=world.other.invitation.pk)).status_code == 404
    foreign.refresh_from_db()
    assert foreign.role == Role.OWNER
    assert Invitation.objects.filter(pk=world.other.invitation.pk).exists()


def test_it_sends_anonymous_visitors_of_the_members_page_to_sign_in(world: World) -> None:
    response = Client().get(page("members"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


# --- accepting an invitation ---------------------------------------------------------------------


def test_it_creates_the_account_of_a_new_person(world: World) -> None:
    invitation = link_invitation(world, role=Role.REVIEWER, email="newbie@example.org")
    client = Client()
    body = client.get(accept_url(invitation)).content.decode()
    assert 'name="username"' in body and 'name="password"' in body
    response = client.post(accept_url(invitation), {"username": "newbie", "password": NEW_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == page("dashboard")
    user = get_user_model().objects.get(username="newbie")
    assert user.email == "newbie@example.org" and user.check_password(NEW_PASSWORD)
    assert membership(world.demo.org, user).role == Role.REVIEWER
    invitation.refresh_from_db()
    assert invitation.accepted_by == user and invitation.accepted_at is not None
    # Signed in as the new account.
    assert client.get(page("dashboard")).status_code == 200


@pytest.mark.parametrize(
    ("username", "password", "error"),
    [
        ("newbie", "short", "Ensure this value has at least 8 characters"),
        ("newbie", "password123", "This password is too common."),
        ("Annotator", NEW_PASSWORD, "This username is taken: sign in first if it is yours."),
        ("", NEW_PASSWORD, "This field is required."),
    ],
)
def test_it_refuses_a_bad_new_account_and_keeps_the_invitation_open(
    world: World, username: str, password: str, error: str
) -> None:
    invitation = world.demo.invitation
    users = get_user_model().objects.count()
    response = Client().post(accept_url(invitation), {"username": username, "password": password})
    assert response.status_code == 400
    assert error in response.content.decode()
    assert get_user_model().objects.count() == users
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


def test_it_attaches_the_membership_to_a_signed_in_user(world: World) -> None:
    invitation = world.demo.invitation
    client = client_for(world.outsider)
    body = client.get(accept_url(invitation)).content.decode()
    assert "Join as outsider" in body and 'name="password"' not in body
    users = get_user_model().objects.count()
    response = client.post(accept_url(invitation))
    assert response.status_code == 302
    assert response["Location"] == page("dashboard")
    assert membership(world.demo.org, world.outsider).role == Role.ANNOTATOR
    assert membership(world.other.org, world.outsider).role == Role.OWNER
    assert get_user_model().objects.count() == users
    assert client.get(page("dashboard")).status_code == 200


def test_it_refuses_an_email_invitation_to_someone_signed_in_with_another_address(world: World) -> None:
    invitation = link_invitation(world, email="someone@example.org")
    world.outsider.email = "outsider@example.org"
    world.outsider.save(update_fields=["email"])
    response = client_for(world.outsider).post(accept_url(invitation))
    assert response.status_code == 400
    assert "This invitation was sent to another e-mail address." in response.content.decode()
    assert not Membership.objects.filter(organization=world.demo.org, user=world.outsider).exists()


def test_it_works_once(world: World) -> None:
    link = accept_url(world.demo.invitation)
    assert Client().post(link, {"username": "first", "password": NEW_PASSWORD}).status_code == 302
    for client in (Client(), client_for(world.outsider)):
        assert "This invitation has already been used." in client.get(link).content.decode()
        response = client.post(link, {"username": "second", "password": NEW_PASSWORD})
        assert response.status_code == 410
        assert "This invitation has already been used." in response.content.decode()
    assert not get_user_model().objects.filter(username="second").exists()
    assert not Membership.objects.filter(organization=world.demo.org, user=world.outsider).exists()


def test_it_refuses_an_expired_invitation_with_a_clear_message(world: World) -> None:
    link = accept_url(world.demo.invitation)
    Invitation.objects.filter(pk=world.demo.invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = Client().get(link)
    assert response.status_code == 410
    assert '<p class="error" role="alert">This invitation has expired: ask for a new one.</p>' in (
        response.content.decode()
    )
    response = client_for(world.outsider).post(link)
    assert response.status_code == 410
    assert not Membership.objects.filter(organization=world.demo.org, user=world.outsider).exists()


def tampered(token: str) -> str:
    """The token with one character of its signature changed."""
    last = token[-1]
    return token[:-1] + ("A" if last != "A" else "B")


@pytest.mark.parametrize(
    "make",
    [
        lambda inv: tampered(members.invitation_token(inv)),
        lambda inv: "nonsense",
        lambda inv: signing.dumps({"i": inv.pk}),  # signed, but not with the invitations' salt
        lambda inv: signing.dumps({"i": inv.pk}, salt=members.INVITATION_SALT),  # an older or forged shape
        lambda inv: signing.dumps({"i": "x", "o": "y", "t": "z"}, salt=members.INVITATION_SALT),
    ],
    ids=["tampered", "garbage", "other-salt", "no-binding", "wrong-types"],
)
def test_it_refuses_a_token_it_did_not_sign_for_this_invitation(world: World, make: Any) -> None:
    response = Client().post(
        reverse("invitation_accept", kwargs={"token": make(world.demo.invitation)}),
        {"username": "intruder", "password": NEW_PASSWORD},
    )
    assert response.status_code == 410
    assert "This invitation link is not valid: it may have been revoked." in response.content.decode()
    assert not get_user_model().objects.filter(username="intruder").exists()


def test_it_refuses_an_old_link_whose_row_id_came_back(world: World) -> None:
    old = world.demo.invitation
    link = accept_url(old)
    old_pk = old.pk
    old.delete()
    # A database restored or rebuilt under the same secret key: a new invitation with the old id.
    reborn = Invitation.objects.create(
        pk=old_pk, organization=world.demo.org, role=Role.OWNER, expires_at=timezone.now() + timedelta(days=1)
    )
    response = Client().post(link, {"username": "intruder", "password": NEW_PASSWORD})
    assert response.status_code == 410
    assert not get_user_model().objects.filter(username="intruder").exists()
    assert Client().get(accept_url(reborn)).status_code == 200


def test_it_does_not_lower_the_role_of_someone_already_a_member(world: World) -> None:
    response = client_for(world.manager).post(accept_url(world.demo.invitation))
    assert response.status_code == 302
    assert membership(world.demo.org, world.manager).role == Role.MANAGER


# --- the profile page and the API token ----------------------------------------------------------


def api_get(key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get(reverse("api_project_list", kwargs={"org_slug": "demo-lab"})).status_code


def test_it_creates_an_api_token_that_works_until_revoked(world: World) -> None:
    client = client_for(world.annotator)
    body = client.get(reverse("profile")).content.decode()
    assert "You have no API token." in body

    response = client.post(reverse("profile"), {"action": "create"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    token = Token.objects.get(user=world.annotator)
    assert f'<code data-testid="token-key">{token.key}</code>' in response.content.decode()
    assert api_get(token.key) == 200

    # Shown once: later visits name only its end.
    body = client.get(reverse("profile")).content.decode()
    assert token.key not in body and f"…{token.key[-4:]}" in body

    response = client.post(reverse("profile"), {"action": "revoke"})
    assert response.status_code == 200
    assert "API token revoked." in response.content.decode()
    assert not Token.objects.filter(user=world.annotator).exists()
    assert api_get(token.key) == 401


def test_it_replaces_the_token_and_the_old_key_stops_working(world: World) -> None:
    client = client_for(world.manager)
    client.post(reverse("profile"), {"action": "create"})
    old = Token.objects.get(user=world.manager).key
    client.post(reverse("profile"), {"action": "create"})
    new = Token.objects.get(user=world.manager).key
    assert new != old
    assert (api_get(old), api_get(new)) == (401, 200)


def test_it_refuses_an_unknown_profile_action_and_keeps_the_token(world: World) -> None:
    token = Token.objects.create(user=world.reviewer)
    response = client_for(world.reviewer).post(reverse("profile"), {"action": "nonsense"})
    assert response.status_code == 400
    assert Token.objects.filter(key=token.key).exists()


def test_it_keeps_each_users_token_their_own(world: World) -> None:
    theirs = Token.objects.create(user=world.outsider)
    client_for(world.annotator).post(reverse("profile"), {"action": "revoke"})
    assert Token.objects.filter(key=theirs.key).exists()
    body = client_for(world.annotator).get(reverse("profile")).content.decode()
    assert theirs.key not in body and theirs.key[-4:] not in body


def test_it_sends_anonymous_visitors_of_the_profile_to_sign_in(world: World) -> None:
    response = Client().post(reverse("profile"), {"action": "create"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not Token.objects.exists()


def test_drf_create_token_still_works(world: World) -> None:
    out = StringIO()
    call_command("drf_create_token", "annotator", stdout=out)
    token = Token.objects.get(user=world.annotator)
    assert token.key in out.getvalue()
    assert api_get(token.key) == 200
    body = client_for(world.annotator).get(reverse("profile")).content.decode()
    assert f"…{token.key[-4:]}" in body
    # A password sign-in is not needed for any of this.
    assert world.annotator.check_password(PASSWORD)


def test_it_gives_an_invitation_the_same_link_every_time(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    first = accept_url(world.demo.invitation)
    later = signing.time.time() + 5  # the clock Django's timestamped signatures read
    monkeypatch.setattr(signing.time, "time", lambda: later)
    assert accept_url(world.demo.invitation) == first
    assert opened_by(first) == world.demo.invitation
