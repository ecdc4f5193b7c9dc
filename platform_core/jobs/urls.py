"""Job pages, under o/<org_slug>/jobs/."""

from __future__ import annotations

from django.urls import path

from platform_core.jobs import views

urlpatterns = [
    path("", views.job_list, name="job_list"),
    path("<int:job_id>/", views.job_detail, name="job_detail"),
    path("<int:job_id>/result", views.job_result, name="job_result"),
    path("<int:job_id>/cancel/", views.job_cancel_view, name="job_cancel"),
    path("<int:job_id>/retry/", views.job_retry_view, name="job_retry"),
]
