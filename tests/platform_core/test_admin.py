"""Django admin is tenant-scoped: a manager of one organisation sees, picks, filters and acts only on
that organisation's rows; another organisation's objects are a 404; annotators have no admin."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from annotation.models import Label, MediaItem, Project
from platform_core.admin_tenancy import TenantModelAdmin
from platform_core.models import Membership, Organization
from tests.factories import LabelFactory, ProjectFactory

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
