"""Page routes of the annotation app, included under o/<org_slug>/ by platform_core.urls."""

from __future__ import annotations

from django.urls import path

from annotation import media_delivery, video_previews, views
from annotation.datasets import statistics_views, transfer_views
from annotation.datasets import views as dataset_views
from annotation.projects import gallery
from annotation.projects import views as project_views
from annotation.studio import views as studio_views
from annotation.tasks import views as task_views

project = "projects/<int:project_id>/"

urlpatterns = [
    # projects
    path("projects/new/", project_views.project_create, name="project_create"),
    path(project, gallery.project_detail, name="project_detail"),
    path(project + "edit/", project_views.project_edit, name="project_edit"),
    path(project + "delete/", project_views.project_delete, name="project_delete"),
    # labels and questions
    path(project + "labels/", project_views.label_manager, name="label_manager"),
    path(project + "labels/<int:label_id>/", project_views.label_edit, name="label_edit"),
    path(project + "labels/<int:label_id>/move/", project_views.label_move, name="label_move"),
    path(project + "labels/<int:label_id>/delete/", project_views.label_delete, name="label_delete"),
    path(project + "questions/", project_views.question_add, name="question_add"),
    path(project + "questions/<int:question_id>/delete/", project_views.question_delete, name="question_delete"),
    path(project + "preannotate/", project_views.preannotate, name="preannotate"),
    path(project + "export/", dataset_views.dataset_export, name="dataset_export"),
    path(project + "import/", transfer_views.dataset_import, name="dataset_import"),
    path(project + "merge/", transfer_views.dataset_merge, name="dataset_merge"),
    path(project + "splits/", transfer_views.dataset_splits, name="dataset_splits"),
    path(project + "statistics/", statistics_views.dataset_statistics, name="dataset_statistics"),
    # media
    path(project + "media/<int:media_id>/", views.media_detail, name="media_detail"),
    path(project + "media/selection/", gallery.media_bulk_action, name="media_bulk_action"),
    path(project + "media/import/", gallery.media_import, name="media_import"),
    # a video's frames, beside its file and thumbnail (platform_core.urls)
    path("media/<int:video_id>/frames/<int:frame>.jpg", media_delivery.media_frame, name="media_frame"),
    path(
        "media/<int:video_id>/frames/<int:frame>/preview.jpg",
        video_previews.media_frame_preview,
        name="media_frame_preview",
    ),
    # tasks
    path(project + "tasks/", task_views.project_tasks, name="project_tasks"),
    path("tasks/", task_views.my_tasks, name="my_tasks"),
    path("tasks/<int:task_id>/", task_views.task_open, name="task_open"),
    path("tasks/<int:task_id>/items/<int:media_id>/", task_views.task_item, name="task_item"),
    path("tasks/<int:task_id>/items/<int:media_id>/studio/", studio_views.studio, name="studio"),
    path("tasks/<int:task_id>/submit/", task_views.task_submit, name="task_submit"),
    path("tasks/<int:task_id>/review/", task_views.task_review, name="task_review"),
    path("tasks/<int:task_id>/assign/", task_views.task_assign, name="task_assign"),
    path("tasks/<int:task_id>/delete/", task_views.task_delete, name="task_delete"),
]
