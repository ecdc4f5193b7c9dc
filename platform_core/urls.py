from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from annotation import apis as annotation_apis
from annotation import views as annotation_views
from platform_core import health, views

# Every URL that names an organisation lives under o/<org_slug>/ (pages) or
# api/v1/o/<org_slug>/ (REST) and resolves it through platform_core.tenancy.
tenant_pages = [
    path("", views.dashboard, name="dashboard"),
    path("projects/<int:project_id>/", annotation_views.project_detail, name="project_detail"),
    path(
        "projects/<int:project_id>/media/<int:media_id>/",
        annotation_views.media_detail,
        name="media_detail",
    ),
    path("media/<int:media_id>/file", annotation_views.media_file, name="media_file"),
]

tenant_api = [
    path("projects/", annotation_apis.ProjectListApi.as_view(), name="api_project_list"),
    path("projects/<int:project_id>/", annotation_apis.ProjectDetailApi.as_view(), name="api_project_detail"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("orgs/", views.organization_list, name="organization_list"),
    path("o/<slug:org_slug>/", include(tenant_pages)),
    path("api/v1/o/<slug:org_slug>/", include(tenant_api)),
    path("admin/", admin.site.urls),
]
