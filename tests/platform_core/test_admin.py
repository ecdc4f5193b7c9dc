"""Django admin is tenant-scoped: a manager of one organisation sees, picks, filters and acts only on
that organisation's rows; another organisation's objects are a 404; annotators have no admin."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from annotation.models import Label, MediaItem, Project, Question, Task
from crowd.models import (
    CrowdAssignment,
    CrowdBatch,
    CrowdHit,
    CrowdResult,
    CrowdWorker,
    GoldItem,
    QualificationTest,
    ReviewAction,
)
from platform_core.admin_tenancy import TenantModelAdmin
from platform_core.models import Invitation, Job, Membership, Organization
from tests.crowd.helpers import crowd_rows
from tests.factories import LabelFactory, MembershipFactory, ProjectFactory


def _crowd(world: Any, name: str) -> tuple[Any, Any]:
    return getattr(crowd_rows(world.demo), name), getattr(crowd_rows(world.other), name)


def _crowd_made(world: Any, model: type) -> tuple[Any, Any]:
    """A HIT, a result or a review action on each side, made from that side's crowd rows."""

    def make(side: Any) -> Any:
        rows = crowd_rows(side)
        if model is CrowdHit:
            return CrowdHit.objects.create(batch=rows.batch, hit_id=f"HIT-{side.org.slug}")
        if model is CrowdResult:
            return CrowdResult.objects.create(batch=rows.batch, media=side.media, method="majority", answer="one")
        return ReviewAction.objects.create(organization=side.org, kind="block", worker=rows.worker, reason="spam")

    return make(world.demo), make(world.other)


# For each tenant model in the admin, the Demo Lab and Other Lab object of the world fixture.
OBJECTS = {
    Organization: lambda w: (w.demo.org, w.other.org),
    Membership: lambda w: (
        Membership.objects.get(user=w.annotator),
        Membership.objects.get(user=w.outsider),
    ),
    Project: lambda w: (w.demo.project, w.other.project),
    Label: lambda w: (w.demo.label, w.other.label),
    MediaItem: lambda w: (w.demo.media, w.other.media),
    Job: lambda w: (w.demo.job, w.other.job),
    Question: lambda w: (w.demo.question, w.other.question),
    Task: lambda w: (w.demo.task, w.other.task),
    Invitation: lambda w: (w.demo.invitation, w.other.invitation),
    CrowdBatch: lambda w: _crowd(w, "batch"),
    CrowdWorker: lambda w: _crowd(w, "worker"),
    GoldItem: lambda w: _crowd(w, "gold"),
    QualificationTest: lambda w: _crowd(w, "test"),
    CrowdAssignment: lambda w: _crowd(w, "assignment"),
    CrowdHit: lambda w: _crowd_made(w, CrowdHit),
    CrowdResult: lambda w: _crowd_made(w, CrowdResult),
    ReviewAction: lambda w: _crowd_made(w, ReviewAction),
}


def admin_url(obj: Any, view: str) -> str:
    opts = obj._meta
    if view == "changelist":
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=[obj.pk])


@pytest.fixture
def manager_client(world: Any) -> Client:
    client = Client()
    client.force_login(world.manager)
    return client


def test_it_covers_every_tenant_model_registered_in_the_admin() -> None:
    tenant_admins = {m for m, a in admin.site._registry.items() if isinstance(a, TenantModelAdmin)}
    assert tenant_admins == set(OBJECTS)


def test_it_gives_non_tenant_admin_pages_to_superusers_only(world: Any, manager_client: Client) -> None:
    # Users, groups and tokens span organisations: a manager without Django permissions sees none.
    for model, model_admin in admin.site._registry.items():
        if isinstance(model_admin, TenantModelAdmin):
            continue
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert manager_client.get(url).status_code == 403, url


@pytest.mark.parametrize("model", list(OBJECTS), ids=lambda m: m.__name__)
def test_it_lists_only_the_managers_organisation(world: Any, manager_client: Client, model: type) -> None:
    mine, theirs = OBJECTS[model](world)
    response = manager_client.get(admin_url(mine, "changelist"))
    assert response.status_code == 200
    shown = set(response.context["cl"].result_list)
    assert mine in shown
    assert theirs not in shown


@pytest.mark.parametrize("model", list(OBJECTS), ids=lambda m: m.__name__)
@pytest.mark.parametrize("view", ["change", "delete", "history"])
def test_it_answers_404_for_another_organisations_object(
    world: Any, manager_client: Client, model: type, view: str
) -> None:
    mine, theirs = OBJECTS[model](world)
    # Own objects answer by permission (a manager may not delete the organisation itself).
    assert manager_client.get(admin_url(mine, view)).status_code in (200, 403)
    assert manager_client.get(admin_url(theirs, view)).status_code == 404
    assert manager_client.post(admin_url(theirs, view), {"post": "yes"}).status_code == 404
    assert model.objects.filter(pk=theirs.pk).exists()


def test_it_scopes_foreign_key_choices_in_forms(world: Any, manager_client: Client) -> None:
    response = manager_client.get(reverse("admin:annotation_label_add"))
    choices = list(response.context["adminform"].form.fields["project"].queryset)
    assert choices == [world.demo.project]


def test_it_refuses_to_save_an_object_into_another_organisation(world: Any, manager_client: Client) -> None:
    response = manager_client.post(
        reverse("admin:annotation_label_add"),
        {"project": world.other.project.pk, "name": "smuggled", "color": "#123456", "kind": "mask", "order": 0},
    )
    assert response.status_code == 200  # the form comes back with an error
    assert "project" in response.context["adminform"].form.errors
    assert not Label.objects.filter(name="smuggled").exists()


def test_it_scopes_autocomplete_results(world: Any, manager_client: Client) -> None:
    response = manager_client.get(
        reverse("admin:autocomplete"),
        {"app_label": "annotation", "model_name": "label", "field_name": "project", "term": ""},
    )
    assert response.status_code == 200
    ids = {int(row["id"]) for row in response.json()["results"]}
    assert ids == {world.demo.project.pk}


def test_it_scopes_list_filter_choices(world: Any, manager_client: Client) -> None:
    # Django shows a related filter only when it offers two or more choices.
    second = LabelFactory(project=ProjectFactory(organization=world.demo.org)).project
    response = manager_client.get(reverse("admin:annotation_label_changelist"))
    project_filter = next(f for f in response.context["cl"].filter_specs if getattr(f, "field_path", "") == "project")
    offered = {str(pk) for pk, _ in project_filter.lookup_choices}
    assert offered == {str(world.demo.project.pk), str(second.pk)}


def test_it_ignores_foreign_ids_in_bulk_actions(world: Any, manager_client: Client) -> None:
    response = manager_client.post(
        reverse("admin:annotation_label_changelist"),
        {"action": "delete_selected", "_selected_action": [world.demo.label.pk, world.other.label.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Label.objects.filter(pk=world.demo.label.pk).exists()
    assert Label.objects.filter(pk=world.other.label.pk).exists()


@pytest.mark.parametrize("who", ["annotator", "reviewer"])
def test_it_refuses_the_admin_to_members_who_do_not_manage(world: Any, who: str) -> None:
    client = Client()
    client.force_login(getattr(world, who))
    for url in (reverse("admin:index"), admin_url(world.demo.project, "change")):
        response = client.get(url, follow=True)
        assert response.status_code == 403, url
        assert len(response.redirect_chain) == 1  # one hop to the admin's sign-in, no loop


def test_it_sends_anonymous_users_to_the_platform_sign_in(world: Any) -> None:
    response = Client().get(reverse("admin:index"), follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0].startswith(reverse("login") + "?next=/admin/")


def test_it_lets_a_superuser_see_every_organisation(world: Any, django_user_model: Any) -> None:
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client = Client()
    client.force_login(root)
    response = client.get(reverse("admin:annotation_project_changelist"))
    assert set(response.context["cl"].result_list) == {world.demo.project, world.other.project}


def membership_change(client: Client, membership: Membership, role: str) -> int:
    url = admin_url(membership, "change")
    return client.post(url, {"role": role}).status_code


def test_it_does_not_let_a_manager_promote_themselves(world: Any, manager_client: Client) -> None:
    own = Membership.objects.get(user=world.manager)
    assert manager_client.get(admin_url(own, "change")).context["has_change_permission"] is False
    membership_change(manager_client, own, "owner")
    own.refresh_from_db()
    assert own.role == "manager"


def test_it_does_not_let_a_manager_demote_or_remove_the_owner(world: Any, manager_client: Client) -> None:
    owner = Membership.objects.get(user=world.owner)
    membership_change(manager_client, owner, "annotator")
    assert manager_client.post(admin_url(owner, "delete"), {"post": "yes"}).status_code == 403
    owner.refresh_from_db()
    assert owner.role == "owner"


def test_it_lets_a_manager_grant_only_roles_below_their_own(world: Any, manager_client: Client) -> None:
    annotator = Membership.objects.get(user=world.annotator)
    form = manager_client.get(admin_url(annotator, "change")).context["adminform"].form
    assert [value for value, _ in form.fields["role"].choices] == ["reviewer", "annotator"]
    assert membership_change(manager_client, annotator, "reviewer") == 302
    annotator.refresh_from_db()
    assert annotator.role == "reviewer"
    assert membership_change(manager_client, annotator, "owner") == 200  # refused with a form error
    annotator.refresh_from_db()
    assert annotator.role == "reviewer"


def test_it_lets_an_owner_appoint_a_manager_but_not_change_themselves(world: Any) -> None:
    client = Client()
    client.force_login(world.owner)
    reviewer = Membership.objects.get(user=world.reviewer)
    assert membership_change(client, reviewer, "manager") == 302
    reviewer.refresh_from_db()
    assert reviewer.role == "manager"
    own = Membership.objects.get(user=world.owner)
    membership_change(client, own, "annotator")
    own.refresh_from_db()
    assert own.role == "owner"


def test_it_offers_no_bulk_deletion_of_memberships(world: Any, manager_client: Client) -> None:
    owner = Membership.objects.get(user=world.owner)
    response = manager_client.post(
        reverse("admin:platform_core_membership_changelist"),
        {"action": "delete_selected", "_selected_action": [owner.pk], "post": "yes"},
    )
    action_form = response.context["action_form"]  # None when no action is left at all
    assert action_form is None or "delete_selected" not in dict(action_form.fields["action"].choices)
    assert Membership.objects.filter(pk=owner.pk).exists()


def test_it_does_not_move_a_project_between_organisations(world: Any) -> None:
    # A manager of both organisations still cannot carry a project (and its files) across.
    MembershipFactory(user=world.manager, organization=world.other.org, role="manager")
    client = Client()
    client.force_login(world.manager)
    url = admin_url(world.demo.project, "change")
    form = client.get(url).context["adminform"].form
    assert "organization" not in form.fields
    client.post(
        url,
        {
            "organization": world.other.org.pk,
            "name": world.demo.project.name,
            "description": "",
            "labels-TOTAL_FORMS": 0,
            "labels-INITIAL_FORMS": 0,
        },
    )
    world.demo.project.refresh_from_db()
    assert world.demo.project.organization == world.demo.org


def test_it_shows_the_label_inline_to_a_manager(world: Any, manager_client: Client) -> None:
    response = manager_client.get(admin_url(world.demo.project, "change"))
    formsets = response.context["inline_admin_formsets"]
    assert [f.formset.prefix for f in formsets] == ["labels"]
    assert [form.instance for form in formsets[0].formset.forms] == [world.demo.label]


@pytest.mark.parametrize("view", ["add", "change"])
def test_it_refuses_non_tenant_admin_forms_to_managers(world: Any, manager_client: Client, view: str) -> None:
    for model, model_admin in admin.site._registry.items():
        if isinstance(model_admin, TenantModelAdmin):
            continue
        opts = model._meta
        if view == "add":
            url = reverse(f"admin:{opts.app_label}_{opts.model_name}_add")
        else:
            obj = model._default_manager.first()
            if obj is None:
                continue
            url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        assert manager_client.get(url).status_code in (403, 404), url


@pytest.mark.parametrize(
    ("next_url", "lands"),
    [
        (None, "/admin/"),
        ("/admin/annotation/project/", "/admin/annotation/project/"),
        ("https://evil.example/", "/admin/"),
        ("/admin/login/", "/admin/"),
    ],
    ids=["no-next", "next", "foreign-next", "next-is-login"],
)
def test_it_sends_a_signed_in_manager_on_into_the_admin(world: Any, next_url: str | None, lands: str) -> None:
    client = Client()
    client.force_login(world.manager)
    response = client.get(reverse("admin:login"), {"next": next_url} if next_url else {})
    assert response.status_code == 302
    assert response["Location"] == lands
    assert client.get(lands).status_code == 200


def test_it_tells_a_signed_in_annotator_the_admin_is_for_managers(world: Any) -> None:
    client = Client()
    client.force_login(world.annotator)
    response = client.get(reverse("admin:login"), {"next": "/admin/"})
    assert response.status_code == 403
    assert "The admin is for owners and managers" in response.content.decode()
