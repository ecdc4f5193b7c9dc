"""The crowd worker's URLs: outside /o/<org>/, reached by a batch's public id or a signed token."""

from __future__ import annotations

from django.urls import path

from crowd import views

urlpatterns = [
    path("link/<str:public_id>/", views.link_entry, name="crowd_link_entry"),
    path("mturk/<str:public_id>/", views.mturk_entry, name="crowd_mturk_entry"),
    path("mturk/<str:public_id>/preview-image", views.preview_image, name="crowd_preview_image"),
    path("mturk/<str:public_id>/preview-overlay", views.preview_overlay, name="crowd_preview_overlay"),
    path("qualify/<str:token>/", views.qualification, name="crowd_qualification"),
    path("qualify/<str:token>/image/<int:index>", views.qualification_image, name="crowd_qualification_image"),
    path("qualify/<str:token>/overlay/<int:index>", views.qualification_overlay, name="crowd_qualification_overlay"),
    path("task/<str:token>/", views.task, name="crowd_task"),
    path("task/<str:token>/image", views.task_image, name="crowd_task_image"),
    path("task/<str:token>/overlay", views.task_overlay, name="crowd_task_overlay"),
]
