"""YouTube-VIS import (annotation.datasets.youtube_vis_import): each track onto the project's video
of the same name as a new track of pre-annotations, masks as in the file; refused whole for a
malformed file or a video whose frame count or size differs; unknown categories, unmatched videos
and unmapped answers reported; through the job (the format told or found in the file), the REST
endpoint, the project page and ``manage.py import_dataset`` (other organisations: 404)."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from annotation.datasets.coco_import import dataset_import_run
from annotation.datasets.coco_reading import ImportRefused
from annotation.datasets.import_job import dataset_import_start
from annotation.models import Annotation, Label, MediaItem
from platform_core.jobs.core import run_job
from platform_core.models import Job
from platform_core.tenancy import resolve_tenant
from tests.annotation.dataset_project import run_export
from tests.annotation.test_dataset_video_export import VideoDataset, make_video_dataset
from tests.api_client import api_url, token_client
from tests.conftest import World


@pytest.fixture
def source(world: World) -> VideoDataset:
    return make_video_dataset(world, name="Reference")


@pytest.fixture
def target(world: World) -> VideoDataset:
    """The same two videos (and labels) in another project, with tracks 1–3 of their own on the walk."""
    return make_video_dataset(world, name="Target")


@pytest.fixture
def vis(source: VideoDataset, tmp_path: Path) -> dict[str, Any]:
    """The YouTube-VIS export of the reference project (its people's tracks, not its proposal)."""
    _, path = run_export(source.project, tmp_path, format="youtube-vis")
    return json.loads(path.read_text())


def write(data: dict[str, Any], folder: Path, name: str = "vis.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(data))
    return path


def run_import(world: World, target: VideoDataset, path: Path, **params: Any) -> dict[str, Any]:
    tenant = resolve_tenant(world.manager, "demo-lab")
    params = {"source": "json", "path": str(path), "label": path.name, **params}
    return dataset_import_run(tenant=tenant, project=target.project, params=params, actor=world.manager)


def imported(target: VideoDataset) -> list[Annotation]:
    return list(
        Annotation.objects.filter(media__project=target.project, source=Annotation.Source.IMPORT).order_by(
            "media_id", "track", "frame"
        )
    )


def test_it_imports_each_track_as_a_new_track_of_pre_annotations(
    world: World, target: VideoDataset, vis: dict[str, Any], tmp_path: Path
) -> None:
    before = set(Annotation.objects.filter(media__project=target.project).values_list("id", "version"))
    report = run_import(world, target, write(vis, tmp_path), format="youtube-vis")

    assert {k: report[k] for k in ("format", "videos_in_file", "tracks_in_file", "matched_videos", "tracks")} == {
        "format": "youtube-vis",
        "videos_in_file": 2,
        "tracks_in_file": 4,
        "matched_videos": 2,
        "tracks": 4,
    }
    assert report["annotations"] == 10 and report["skipped_tracks_count"] == report["skipped_videos_count"] == 0
    # What was there is untouched.
    assert before <= set(Annotation.objects.filter(media__project=target.project).values_list("id", "version"))

    rows = imported(target)
    assert len(rows) == 10 and all(row.proposed for row in rows)
    by_track: dict[tuple[int, int], dict[int, dict]] = {}
    for row in rows:
        by_track.setdefault((row.media_id, row.track), {})[row.frame] = row.rle
    # Fresh numbers above the walk's tracks 1–4 (in the file's order), and above the pan's track 7.
    walk, pan = target.walk.pk, target.pan.pk
    assert sorted(by_track) == [(walk, 5), (walk, 6), (walk, 7), (pan, 8)]
    # The file holds the walk's tracks 1, 2 and 4, then the pan's: in that order.
    for entry, new in zip(vis["annotations"], [(walk, 5), (walk, 6), (walk, 7), (pan, 8)], strict=True):
        assert by_track[new] == {frame: rle for frame, rle in enumerate(entry["segmentations"]) if rle is not None}

    first = next(row for row in rows if row.media_id == walk and row.track == 5)
    assert first.label == target.cat and first.answers == {str(target.pose.pk): "sitting"}
    assert first.source_detail == {"file": "vis.json", "youtube_vis_id": vis["annotations"][0]["id"]}


def test_it_imports_as_accepted_objects_when_asked(
    world: World, target: VideoDataset, vis: dict[str, Any], tmp_path: Path
) -> None:
    run_import(world, target, write(vis, tmp_path), format="youtube-vis", proposed=False)
    assert imported(target) and not any(row.proposed for row in imported(target))


def test_it_refuses_a_video_whose_frame_count_differs(
    world: World, target: VideoDataset, vis: dict[str, Any], tmp_path: Path
) -> None:
    short = copy.deepcopy(vis)
    walk = next(video for video in short["videos"] if video["file_names"][0].startswith("walk in park/"))
    walk["file_names"], walk["length"] = walk["file_names"][:4], 4
    for entry in short["annotations"]:
        if entry["video_id"] == walk["id"]:
            for key in ("segmentations", "bboxes", "areas", "centroids"):
                entry[key] = entry[key][:4]
            entry["length"] = 4
    count = Annotation.objects.count()
    with pytest.raises(ImportRefused) as refused:
        run_import(world, target, write(short, tmp_path), format="youtube-vis")
    assert "it has 4 frames in the file but the video “walk in park.mp4” it matches has 5" in refused.value.message
    assert "nothing was imported" in refused.value.message
    assert Annotation.objects.count() == count


def test_it_refuses_a_malformed_file_whole(
    world: World, target: VideoDataset, vis: dict[str, Any], tmp_path: Path
) -> None:
    broken = copy.deepcopy(vis)
    broken["annotations"][1]["segmentations"].append(None)
    count = Annotation.objects.count()
    with pytest.raises(ImportRefused, match=r"annotations\[1\]\.segmentations: has 6 entries but video"):
        run_import(world, target, write(broken, tmp_path), format="youtube-vis")
    assert Annotation.objects.count() == count


def test_it_refuses_a_video_that_is_not_ready(
    world: World, target: VideoDataset, vis: dict[str, Any], tmp_path: Path
) -> None:
    MediaItem.objects.filter(pk=target.pan.pk).update(state=MediaItem.State.PROCESSING)
    with pytest.raises(ImportRefused, match="has no extracted frames yet"):
        run_import(world, target, write(vis, tmp_path), format="youtube-vis")


def test_it_skips_unknown_categories_unless_asked_to_create_them(
    world: World, target: VideoDataset, vis: dict[str, Any], tmp_path: Path
) -> None:
    renamed = copy.deepcopy(vis)
    dog = next(c for c in renamed["categories"] if c["name"] == "dog")
    dog["name"], dog["color"] = "Wolf", "#123456"
    report = run_import(world, target, write(renamed, tmp_path), format="youtube-vis")
    assert report["unknown_categories"] == ["Wolf"] and report["tracks"] == 3
    assert report["skipped_tracks"] == [
        {
            "track": next(e["id"] for e in renamed["annotations"] if e["category_id"] == dog["id"]),
            "video": next(e["video_id"] for e in renamed["annotations"] if e["category_id"] == dog["id"]),
            "reason": "category “Wolf” has no label in the project (create labels to import it)",
        }
    ]

    report = run_import(world, target, write(renamed, tmp_path), format="youtube-vis", create_labels=True)
    wolf = Label.objects.get(project=target.project, name="Wolf")
    assert report["labels_created"] == ["Wolf"] and report["tracks"] == 4
    assert (wolf.color, wolf.kind) == ("#123456", Label.Kind.BOX)


def test_it_skips_a_video_of_no_name_in_the_project_and_matches_by_safe_name(
    world: World, target: VideoDataset, vis: dict[str, Any], tmp_path: Path
) -> None:
    renamed = copy.deepcopy(vis)
    for video in renamed["videos"]:
        if video["file_names"][0].startswith("pan/"):
            video["file_names"] = [name.replace("pan/", "tilt/") for name in video["file_names"]]
        else:
            video["file_names"] = [name.replace("walk in park/", "Walk in park/") for name in video["file_names"]]
    report = run_import(world, target, write(renamed, tmp_path), format="youtube-vis")
    assert report["matched_videos"] == 1 and report["tracks"] == 3
    assert report["skipped_videos"] == [
        {"video": target_pan_id(renamed), "name": "tilt", "reason": "no video of the project has this name"}
    ]
    assert report["skipped_tracks_count"] == 1


def target_pan_id(data: dict[str, Any]) -> int:
    return next(video["id"] for video in data["videos"] if video["file_names"][0].startswith("tilt/"))


def test_it_reports_answers_it_cannot_map(
    world: World, target: VideoDataset, vis: dict[str, Any], tmp_path: Path
) -> None:
    changed = copy.deepcopy(vis)
    changed["annotations"][0]["attributes"] = {"Pose": "flying", "Mood": "calm"}
    report = run_import(world, target, write(changed, tmp_path), format="youtube-vis")
    assert report["unmapped_answers_count"] == 2
    assert {row["reason"] for row in report["unmapped_answers"]} == {
        "not one of the choices of “Pose”",
        "the label “cat” has no question of this text",
    }


# --- job, API, page, command --------------------------------------------------------------------------


def upload(data: dict[str, Any], name: str = "vis.json") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, json.dumps(data).encode())


def test_the_job_finds_the_format_in_the_file(
    world: World, target: VideoDataset, vis: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        job = dataset_import_start(
            tenant=resolve_tenant(world.manager, "demo-lab"),
            project=target.project,
            actor=world.manager,
            uploaded_file=upload(vis),
        )
    assert "format" not in job.params
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.message
    assert job.report["format"] == "youtube-vis" and job.report["tracks"] == 4
    assert len(imported(target)) == 10


def test_the_job_fails_with_the_refusal_and_imports_nothing(
    world: World, target: VideoDataset, vis: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    MediaItem.objects.filter(pk=target.walk.pk).update(frame_count=6)
    with django_capture_on_commit_callbacks(execute=True):
        job = dataset_import_start(
            tenant=resolve_tenant(world.manager, "demo-lab"),
            project=target.project,
            actor=world.manager,
            uploaded_file=upload(vis),
            format="youtube-vis",
        )
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert "it has 5 frames in the file but the video “walk in park.mp4” it matches has 6" in job.message
    assert not imported(target)


def test_the_api_imports_youtube_vis(
    world: World, target: VideoDataset, vis: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    url = api_url("api_project_import", project_id=target.project.pk)
    with django_capture_on_commit_callbacks(execute=True):
        response = token_client(world.manager).post(
            url, {"file": upload(vis), "format": "youtube-vis"}, format="multipart"
        )
    assert response.status_code == 201, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.params["format"] == "youtube-vis"
    bad = token_client(world.manager).post(url, {"file": upload(vis), "format": "voc"}, format="multipart")
    assert bad.status_code == 400 and "format" in bad.json()

    outsider = token_client(world.outsider)
    assert outsider.post(url, {"file": upload(vis), "format": "youtube-vis"}, format="multipart").status_code == 404
    other = api_url("api_project_import", org_slug="other-lab", project_id=target.project.pk)
    assert outsider.post(other, {"file": upload(vis), "format": "youtube-vis"}, format="multipart").status_code == 404
    assert Job.objects.filter(kind="import_dataset").count() == 1


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_project_page_imports_a_youtube_vis_file(
    world: World, target: VideoDataset, vis: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    url = reverse("dataset_import", kwargs={"org_slug": "demo-lab", "project_id": target.project.pk})
    page = client_for(world.manager).get(target.project.get_absolute_url()).content.decode()
    assert "YouTube-VIS file (.json) puts each track" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(world.manager).post(url, {"file": upload(vis)})
    assert response.status_code == 302
    job = Job.objects.get(kind="import_dataset")
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.report["tracks"] == 4

    assert client_for(world.outsider).post(url, {"file": upload(vis)}).status_code == 404
    assert Job.objects.filter(kind="import_dataset").count() == 1


def test_the_command_imports_youtube_vis(
    world: World, target: VideoDataset, vis: dict[str, Any], tmp_path: Path
) -> None:
    path = write(vis, tmp_path)
    stdout = io.StringIO()
    call_command(
        "import_dataset", str(path), "--project", str(target.project.pk), "--format", "youtube-vis", stdout=stdout
    )
    assert "vis.json: 4 tracks (10 masks) imported as pre-annotations, 2 videos matched" in stdout.getvalue()
    assert len(imported(target)) == 10

    MediaItem.objects.filter(pk=target.pan.pk).update(frame_count=9)
    with pytest.raises(CommandError, match="was refused and nothing was imported"):
        call_command("import_dataset", str(path), "--project", str(target.project.pk), stdout=io.StringIO())
    assert len(imported(target)) == 10
