"""REST API: members (roles, removal), invitations and jobs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from annotation.models import Task
from platform_core.members import invitation_from_token
from platform_core.models import Invitation, Job, Membership, Role
from tests.api_client import api_url, token_client
from tests.conftest import World


def membership(world: World, user: Any) -> Membership:
    return Membership.objects.get(organization=world.demo.org, user=user)


def member_url(world: World, user: Any) -> str:
    return api_url("api_member_detail", membership_id=membership(world, user).pk)


# --- members ------------------------------------------------------------------------------------


def test_it_lists_members_with_emails_for_managers_only(world: World) -> None:
    world.annotator.email = "ann@example.org"
    world.annotator.save(update_fields=["email"])
    rows = token_client(world.manager).get(api_url("api_member_list")).json()["results"]
    assert [(r["username"], r["role"]) for r in rows] == [
        ("annotator", "annotator"),
        ("manager", "manager"),
        ("owner", "owner"),
        ("reviewer", "reviewer"),
    ]
    assert rows[0]["email"] == "ann@example.org"
    assert rows[0]["user"] == world.annotator.pk

    rows = token_client(world.annotator).get(api_url("api_member_list")).json()["results"]
    assert len(rows) == 4
    assert {r["email"] for r in rows} == {""}


def test_it_changes_a_members_role(world: World) -> None:
    response = token_client(world.owner).patch(member_url(world, world.annotator), {"role": "reviewer"}, format="json")
    assert response.status_code == 200
    assert response.json()["role"] == "reviewer"
    assert membership(world, world.annotator).role == Role.REVIEWER


@pytest.mark.parametrize(
    ("actor", "target", "role"),
    [
        ("manager", "annotator", "owner"),  # managers grant only roles below their own
        ("manager", "owner", "annotator"),  # nor touch those ranked above them
        ("owner", "owner", "annotator"),  # nobody changes their own membership
        ("reviewer", "annotator", "reviewer"),
        ("annotator", "annotator", "owner"),
    ],
)
def test_it_refuses_role_changes_the_rules_forbid(world: World, actor: str, target: str, role: str) -> None:
    before = membership(world, getattr(world, target)).role
    response = token_client(getattr(world, actor)).patch(
        member_url(world, getattr(world, target)), {"role": role}, format="json"
    )
    assert response.status_code == 403
    assert membership(world, getattr(world, target)).role == before


def test_it_refuses_an_unknown_role(world: World) -> None:
    response = token_client(world.owner).patch(member_url(world, world.annotator), {"role": "admin"}, format="json")
    assert response.status_code == 400
    assert response.json()["role"]
    assert membership(world, world.annotator).role == Role.ANNOTATOR


def test_it_removes_a_member_and_unassigns_their_tasks(world: World) -> None:
    response = token_client(world.manager).delete(member_url(world, world.annotator))
    assert response.status_code == 204
    assert not Membership.objects.filter(organization=world.demo.org, user=world.annotator).exists()
    world.demo.task.refresh_from_db()
    assert world.demo.task.assignee is None


@pytest.mark.parametrize("actor", ["annotator", "reviewer"])
def test_it_refuses_removal_below_manager(world: World, actor: str) -> None:
    response = token_client(getattr(world, actor)).delete(member_url(world, world.annotator))
    assert response.status_code == 403
    assert Membership.objects.filter(organization=world.demo.org, user=world.annotator).exists()


def test_it_answers_404_for_another_organisations_membership(world: World) -> None:
    foreign = Membership.objects.get(user=world.outsider)
    url = api_url("api_member_detail", membership_id=foreign.pk)
    client = token_client(world.owner)
    assert client.get(url).status_code == 404
    assert client.patch(url, {"role": "annotator"}, format="json").status_code == 404
    assert client.delete(url).status_code == 404
    foreign.refresh_from_db()
    assert foreign.role == Role.OWNER


# --- invitations --------------------------------------------------------------------------------


def test_it_makes_an_invitation_link(world: World) -> None:
    response = token_client(world.manager).post(api_url("api_invitation_list"), {"role": "reviewer"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    invitation = Invitation.objects.get(pk=body["id"])
    assert (invitation.organization, invitation.role, invitation.email) == (world.demo.org, "reviewer", "")
    assert body["url"].startswith("http://testserver/invitations/")
    token = body["url"].rstrip("/").rsplit("/", 1)[1]
    assert invitation_from_token(token) == invitation
    assert mail.outbox == []


def test_it_sends_an_invitation_by_email(world: World, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = token_client(world.owner).post(
            api_url("api_invitation_list"), {"email": "New@Example.org", "role": "manager"}, format="json"
        )
    assert response.status_code == 201
    assert response.json()["email"] == "new@example.org"
    [message] = mail.outbox
    assert message.to == ["new@example.org"]
    assert response.json()["url"] in message.body


@pytest.mark.parametrize(
    ("actor", "body", "status"),
    [
        ("manager", {"role": "owner"}, 403),
        ("manager", {"role": "manager"}, 403),
        ("reviewer", {"role": "annotator"}, 403),
        ("annotator", {"role": "annotator"}, 403),
        ("owner", {"role": "boss"}, 400),
        ("owner", {"email": "not an address", "role": "annotator"}, 400),
        ("owner", {}, 400),
    ],
)
def test_it_refuses_invitations_the_rules_forbid(world: World, actor: str, body: dict, status: int) -> None:
    before = Invitation.objects.count()
    response = token_client(getattr(world, actor)).post(api_url("api_invitation_list"), body, format="json")
    assert response.status_code == status
    assert Invitation.objects.count() == before


def test_it_refuses_to_invite_a_member_again(world: World) -> None:
    world.annotator.email = "ann@example.org"
    world.annotator.save(update_fields=["email"])
    response = token_client(world.owner).post(
        api_url("api_invitation_list"), {"email": "ann@example.org", "role": "reviewer"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["email"] == ["Someone with this e-mail address is already a member."]


def test_it_lists_open_invitations_with_links_only_for_grantable_roles(world: World) -> None:
    owner_invite = Invitation.objects.create(
        organization=world.demo.org, role=Role.OWNER, expires_at=timezone.now() + timedelta(days=1)
    )
    used = Invitation.objects.create(
        organization=world.demo.org,
        role=Role.ANNOTATOR,
        expires_at=timezone.now() + timedelta(days=1),
        accepted_at=timezone.now(),
    )
    rows = {r["id"]: r for r in token_client(world.manager).get(api_url("api_invitation_list")).json()["results"]}
    assert set(rows) == {world.demo.invitation.pk, owner_invite.pk}
    assert used.pk not in rows
    assert rows[world.demo.invitation.pk]["url"].startswith("http://testserver/invitations/")
    # A manager must not be able to take an owner's invitation for themselves.
    assert rows[owner_invite.pk]["url"] is None
    owner_rows = {r["id"]: r for r in token_client(world.owner).get(api_url("api_invitation_list")).json()["results"]}
    assert owner_rows[owner_invite.pk]["url"]


@pytest.mark.parametrize("actor", ["annotator", "reviewer"])
def test_it_hides_invitations_below_manager(world: World, actor: str) -> None:
    response = token_client(getattr(world, actor)).get(api_url("api_invitation_list"))
    assert response.status_code == 403
    assert "/invitations/" not in response.content.decode()  # no link leaks with the refusal


def test_it_revokes_an_invitation(world: World) -> None:
    url = api_url("api_invitation_detail", invitation_id=world.demo.invitation.pk)
    assert token_client(world.annotator).delete(url).status_code == 403
    assert Invitation.objects.filter(pk=world.demo.invitation.pk).exists()
    assert token_client(world.manager).delete(url).status_code == 204
    assert not Invitation.objects.filter(pk=world.demo.invitation.pk).exists()


def test_it_answers_404_for_another_organisations_invitation(world: World) -> None:
    url = api_url("api_invitation_detail", org_slug="other-lab", invitation_id=world.demo.invitation.pk)
    assert token_client(world.outsider).delete(url).status_code == 404
    assert Invitation.objects.filter(pk=world.demo.invitation.pk).exists()


# --- jobs ---------------------------------------------------------------------------------------


def make_job(world: World, by: Any, **fields: Any) -> Job:
    return Job.objects.create(organization=world.demo.org, kind="import_media", created_by=by, **fields)


def test_it_lists_jobs_newest_first_and_an_annotator_only_their_own(world: World) -> None:
    mine = make_job(world, world.annotator)
    theirs = make_job(world, world.manager, state=Job.State.SUCCEEDED, report={"imported": 3})
    rows = token_client(world.reviewer).get(api_url("api_job_list")).json()["results"]
    assert [r["id"] for r in rows] == [theirs.pk, mine.pk, world.demo.job.pk]
    assert (rows[0]["state"], rows[0]["percent"], rows[0]["report"]) == ("succeeded", 100, {"imported": 3})
    assert rows[0]["result"] is None
    # The world's job has a result file: its download goes through the tenant-checked page.
    assert rows[2]["result"] == f"http://testserver/o/demo-lab/jobs/{world.demo.job.pk}/result"

    annotator = token_client(world.annotator)
    assert [r["id"] for r in annotator.get(api_url("api_job_list")).json()["results"]] == [mine.pk, world.demo.job.pk]
    assert annotator.get(api_url("api_job_detail", job_id=mine.pk)).status_code == 200
    assert annotator.get(api_url("api_job_detail", job_id=theirs.pk)).status_code == 404


def test_it_cancels_and_retries_a_job(world: World) -> None:
    job = make_job(world, world.annotator)
    client = token_client(world.manager)
    response = client.post(api_url("api_job_cancel", job_id=job.pk))
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    response = client.post(api_url("api_job_cancel", job_id=job.pk))
    assert response.status_code == 400
    assert response.json()["detail"] == "Only a queued or running job can be cancelled."
    response = client.post(api_url("api_job_retry", job_id=job.pk))
    assert response.status_code == 200
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED


def test_it_lets_only_managers_and_the_starter_control_a_job(world: World) -> None:
    job = make_job(world, world.manager)
    response = token_client(world.reviewer).post(api_url("api_job_cancel", job_id=job.pk))
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED
    mine = make_job(world, world.reviewer)
    assert token_client(world.reviewer).post(api_url("api_job_cancel", job_id=mine.pk)).status_code == 200


def test_it_answers_404_for_another_organisations_job(world: World) -> None:
    job = make_job(world, world.owner)
    client = token_client(world.outsider)
    assert client.get(api_url("api_job_detail", org_slug="other-lab", job_id=job.pk)).status_code == 404
    assert client.post(api_url("api_job_cancel", org_slug="other-lab", job_id=job.pk)).status_code == 404
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED


def test_it_keeps_tasks_of_other_organisations_when_removing_a_member(world: World) -> None:
    # The removed member's tasks elsewhere are none of this organisation's business.
    Membership.objects.create(user=world.annotator, organization=world.other.org, role=Role.ANNOTATOR)
    elsewhere = Task.objects.create(project=world.other.project, name="There", assignee=world.annotator)
    assert token_client(world.owner).delete(member_url(world, world.annotator)).status_code == 204
    elsewhere.refresh_from_db()
    assert elsewhere.assignee == world.annotator
