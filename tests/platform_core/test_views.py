from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse

from platform_core.models import Role
from platform_core.tenancy import member_required
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_sends_a_single_organisation_member_to_the_dashboard(world: Any) -> None:
    response = client_for(world.annotator).get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard", kwargs={"org_slug": "demo-lab"})


def test_it_offers_the_organisation_switcher_to_a_member_of_several(world: Any) -> None:
    MembershipFactory(user=world.annotator, organization=world.other.org, role=Role.REVIEWER)
    client = client_for(world.annotator)
    response = client.get(reverse("home"))
    assert response["Location"] == reverse("organization_list")
    page = client.get(reverse("organization_list")).content.decode()
    assert "Demo Lab" in page and "Other Lab" in page
    dashboard = client.get(reverse("dashboard", kwargs={"org_slug": "other-lab"})).content.decode()
    assert "Switch organisation" in dashboard
    assert world.other.project.name in dashboard
    assert world.demo.project.name not in dashboard


def test_it_shows_the_organisations_projects_only(world: Any) -> None:
    response = client_for(world.annotator).get(reverse("dashboard", kwargs={"org_slug": "demo-lab"}))
    page = response.content.decode()
    assert response.status_code == 200
    assert world.demo.project.name in page
    assert world.other.project.name not in page
    assert "1 item · 1 label" in page


def test_it_lists_projects_in_a_constant_number_of_queries(world: Any, django_assert_max_num_queries: Any) -> None:
    for _ in range(5):
        ProjectFactory(organization=world.demo.org)
    client = client_for(world.annotator)
    url = reverse("dashboard", kwargs={"org_slug": "demo-lab"})
    client.get(url)
    with django_assert_max_num_queries(6):  # session, user, membership, projects, switcher
        client.get(url)


def test_it_renders_only_the_gallery_page_for_htmx(world: Any) -> None:
    client = client_for(world.annotator)
    url = reverse("project_detail", kwargs={"org_slug": "demo-lab", "project_id": world.demo.project.pk})
    full = client.get(url).content.decode()
    fragment = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "<html" in full and world.demo.label.name in full
    assert "<html" not in fragment
    # The gallery shows the small WebP thumbnail, never the full-size original.
    thumbnail = reverse("media_thumbnail", kwargs={"org_slug": "demo-lab", "media_id": world.demo.media.pk})
    assert thumbnail in fragment
    assert reverse("media_file", kwargs={"org_slug": "demo-lab", "media_id": world.demo.media.pk}) not in fragment


def test_it_serves_the_stored_image_bytes_to_members(world: Any) -> None:
    url = reverse("media_file", kwargs={"org_slug": "demo-lab", "media_id": world.demo.media.pk})
    response = client_for(world.annotator).get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    with world.demo.media.file.open("rb") as stored:
        assert b"".join(response.streaming_content) == stored.read()


def test_it_answers_404_for_media_of_another_project_in_the_same_organisation(world: Any) -> None:
    sibling = ProjectFactory(organization=world.demo.org)
    url = reverse(
        "media_detail", kwargs={"org_slug": "demo-lab", "project_id": sibling.pk, "media_id": world.demo.media.pk}
    )
    assert client_for(world.annotator).get(url).status_code == 404


@pytest.mark.django_db
def test_it_requires_the_role_a_view_asks_for() -> None:
    org = OrganizationFactory()
    annotator = MembershipFactory(organization=org, role=Role.ANNOTATOR).user
    manager = MembershipFactory(organization=org, role=Role.MANAGER).user

    @member_required(role=Role.MANAGER)
    def managers_only(request: Any) -> HttpResponse:
        return HttpResponse(request.tenant.org.slug)

    request = RequestFactory().get("/")
    request.user = manager
    assert managers_only(request, org_slug=org.slug).content.decode() == org.slug
    request.user = annotator
    with pytest.raises(PermissionDenied):
        managers_only(request, org_slug=org.slug)
    with pytest.raises(Http404):
        managers_only(request, org_slug="no-such-org")


def test_it_signs_in_and_out_with_the_platform_pages(world: Any) -> None:
    client = Client()
    response = client.post(reverse("login"), {"username": "annotator", "password": "correct horse battery staple"})
    assert response.status_code == 302
    assert client.get(reverse("dashboard", kwargs={"org_slug": "demo-lab"})).status_code == 200
    client.post(reverse("logout"))
    assert client.get(reverse("dashboard", kwargs={"org_slug": "demo-lab"})).status_code == 302


def test_it_rejects_a_wrong_password(world: Any) -> None:
    response = Client().post(reverse("login"), {"username": "annotator", "password": "nope"})
    assert response.status_code == 200
    assert "didn't match" in response.content.decode()
