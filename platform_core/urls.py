from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from annotation import media_delivery
from platform_core import health, member_views, views
from platform_core.api import ApiDocsView

# Every URL that names an organisation lives under o/<org_slug>/ (pages) or
# api/v1/o/<org_slug>/ (REST) and resolves it through platform_core.tenancy.
tenant_pages = [
    path("", views.dashboard, name="dashboard"),
    path("", include("annotation.urls")),
    path("", include("crowd.manage_urls")),
    path("members/", member_views.members_page, name="members"),
    path("members/<int:membership_id>/role/", member_views.member_role, name="member_role"),
    path("members/<int:membership_id>/remove/", member_views.member_remove, name="member_remove"),
    path("invitations/<int:invitation_id>/revoke/", member_views.invitation_revoke, name="invitation_revoke"),
    path("media/<int:media_id>/file", media_delivery.media_file, name="media_file"),
    path("media/<int:media_id>/thumbnail", media_delivery.media_thumbnail, name="media_thumbnail"),
    path("jobs/", include("platform_core.jobs.urls")),
]

tenant_api = [
    path("", include("annotation.api_urls")),
    path("", include("platform_core.member_apis")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    # Browsers ask for /favicon.ico on pages that link no icon (the admin, JSON answers).
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("favicon.ico")), name="favicon"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("orgs/", views.organization_list, name="organization_list"),
    path("accounts/profile/", member_views.profile, name="profile"),
    path("invitations/<str:token>/", member_views.invitation_accept, name="invitation_accept"),
    path("o/<slug:org_slug>/", include(tenant_pages)),
    path("api/v1/o/<slug:org_slug>/", include(tenant_api)),
    # Crowd workers have no account: their pages are opened by a batch's public id or a signed token.
    path("crowd/", include("crowd.urls")),
    # Public: the schema names no organisation, and the docs page is static (Swagger UI, self-hosted).
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", ApiDocsView.as_view(), name="api_docs"),
    path("admin/", admin.site.urls),
]
