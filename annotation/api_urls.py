"""REST routes of the annotation app, included under api/v1/o/<org_slug>/ by platform_core.urls."""

from __future__ import annotations

from django.urls import path

from annotation.api import annotations, dataset_transfer, datasets, labels, media, preannotation, projects, tasks

project = "projects/<int:project_id>/"
item = "media/<int:media_id>/"

urlpatterns = [
    path("projects/", projects.ProjectListApi.as_view(), name="api_project_list"),
    path(project, projects.ProjectDetailApi.as_view(), name="api_project_detail"),
    path(project + "labels/", labels.LabelListApi.as_view(), name="api_label_list"),
    path(project + "labels/order/", labels.LabelOrderApi.as_view(), name="api_label_order"),
    path(project + "labels/<int:label_id>/", labels.LabelDetailApi.as_view(), name="api_label_detail"),
    path(project + "questions/", labels.QuestionListApi.as_view(), name="api_question_list"),
    path(project + "questions/<int:question_id>/", labels.QuestionDetailApi.as_view(), name="api_question_detail"),
    path(project + "media/", media.MediaListApi.as_view(), name="api_media_list"),
    path("media/<int:media_id>/", media.MediaDetailApi.as_view(), name="api_media_detail"),
    path(item + "annotations/", annotations.AnnotationListApi.as_view(), name="api_annotation_list"),
    path(
        item + "annotations/<int:annotation_id>/",
        annotations.AnnotationDetailApi.as_view(),
        name="api_annotation_detail",
    ),
    path(
        item + "annotations/<int:annotation_id>/accept/",
        annotations.AnnotationAcceptApi.as_view(),
        name="api_annotation_accept",
    ),
    path(item + "annotations/accept/", annotations.AnnotationAcceptAllApi.as_view(), name="api_annotation_accept_all"),
    path(project + "preannotate/", preannotation.ProjectPreannotateApi.as_view(), name="api_project_preannotate"),
    path(project + "export/", datasets.ProjectExportApi.as_view(), name="api_project_export"),
    path(project + "import/", dataset_transfer.ProjectImportApi.as_view(), name="api_project_import"),
    path(project + "merge/", dataset_transfer.ProjectMergeApi.as_view(), name="api_project_merge"),
    path(project + "splits/", dataset_transfer.ProjectSplitListApi.as_view(), name="api_project_splits"),
    path(project + "tasks/", tasks.ProjectTaskListApi.as_view(), name="api_task_list"),
    path("tasks/mine/", tasks.MyTaskListApi.as_view(), name="api_my_tasks"),
    path("tasks/<int:task_id>/", tasks.TaskDetailApi.as_view(), name="api_task_detail"),
]
