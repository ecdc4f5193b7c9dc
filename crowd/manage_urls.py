"""Member pages of the crowd machinery (batches, results, the review queue), included under
o/<org_slug>/ by platform_core.urls. Crowd workers' own pages are in crowd.urls."""

from __future__ import annotations

from django.urls import path

from crowd import manage_views as views

batch = "crowd/batches/<int:batch_id>/"

urlpatterns = [
    path("projects/<int:project_id>/crowd/", views.batch_list, name="crowd_batch_list"),
    path("projects/<int:project_id>/crowd/new/", views.batch_create, name="crowd_batch_create"),
    path(batch, views.batch_detail, name="crowd_batch_detail"),
    path(batch + "state/", views.batch_state, name="crowd_batch_state"),
    path(batch + "aggregate/", views.batch_aggregate, name="crowd_batch_aggregate"),
    path(batch + "mturk/", views.batch_mturk, name="crowd_batch_mturk"),
    path(batch + "results.csv", views.batch_results_csv, name="crowd_batch_results_csv"),
    path("crowd/review/", views.review_queue, name="crowd_review_queue"),
    path("crowd/assignments/<int:assignment_id>/review/", views.assignment_review, name="crowd_assignment_review"),
    path("crowd/assignments/<int:assignment_id>/bonus/", views.assignment_bonus, name="crowd_assignment_bonus"),
    path("crowd/workers/<int:worker_id>/block/", views.worker_block, name="crowd_worker_block"),
    path("crowd/tasks/<int:task_id>/review/", views.task_review, name="crowd_task_review"),
    path("crowd/results/<int:result_id>/review/", views.result_review, name="crowd_result_review"),
]
