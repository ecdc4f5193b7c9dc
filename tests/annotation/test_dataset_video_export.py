"""Video exports (annotation.datasets.video_export): YouTube-VIS that passes a loader's checks and
reads back to the stored masks (lists of the video's length, null where a track is absent,
centroids beside the boxes), COCO-video that pycocotools loads, DAVIS palette PNGs in a zip, the
frames zipped in under the names the JSON gives them, the report's counts; and the same export
through the command, the job, the project page and the REST API (other organisations: 404)."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from PIL import Image
from pycocotools.coco import COCO

from annotation.annotations.services import annotation_create
from annotation.datasets.davis_png import davis_palette, read_frame_png
from annotation.datasets.export_job import run_export_dataset
from annotation.datasets.youtube_vis_reading import check_youtube_vis, read_youtube_vis
from annotation.masks import mask_decode, mask_encode
from annotation.models import Annotation, Label, MediaItem, Project, Question
from annotation.video_services import frame_name, media_create_video
from platform_core.jobs import JobProgress
from platform_core.models import Job
from platform_core.tenancy import resolve_tenant
from tests.annotation.dataset_project import run_export
from tests.annotation.test_video_files import make_clip
from tests.api_client import api_url, token_client
from tests.conftest import World
from tests.factories import ProjectFactory, make_image

WIDTH, HEIGHT, FRAMES = 64, 48, 5


@dataclass
class VideoDataset:
    project: Project
    cat: Label
    dog: Label
    pose: Question  # about cat objects
    walk: MediaItem  # "walk in park.mp4", 5 frames of 64 × 48
    pan: MediaItem  # "pan.mov", 3 frames of 32 × 24
    image: MediaItem
    # The stored masks per (video id, track number): {frame: RLE}.
    tracks: dict[tuple[int, int | None], dict[int, dict]] = field(default_factory=dict)
    proposed: list[Annotation] = field(default_factory=list)


def box_mask(height: int, width: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def make_video_dataset(world: World, *, name: str = "Clips") -> VideoDataset:
    """Two videos made from real clips, tracks drawn through the annotation services: on the walk,
    track 1 (cat) on frames 0–2 and absent after; track 2 on frames 1 and 3 (absent on 2) whose label
    is dog on frame 1 and cat on 3 and 4; an object without a track on frame 4; a pre-annotation
    (track 3) on frames 0 and 1. On the pan: track 7 on every frame. And one image with an object."""
    tenant = resolve_tenant(world.manager, world.demo.org.slug)
    project = ProjectFactory(organization=world.demo.org, name=name, media_type=Project.MediaType.BOTH)
    cat = Label.objects.create(project=project, name="cat", color="#ff8800", order=0)
    dog = Label.objects.create(project=project, name="dog", color="#0044ff", kind=Label.Kind.BOX, order=1)
    pose = Question.objects.create(project=project, label=cat, text="Pose", choices=["sitting", "lying"])
    walk = media_create_video(project=project, name="walk in park.mp4", data=make_clip(), uploaded_by=world.manager)
    pan = media_create_video(project=project, name="pan.mov", data=make_clip(fmt="mov", frames=3, width=32, height=24))
    image = make_image(project, name="still.png")
    dataset = VideoDataset(project, cat, dog, pose, walk, pan, image)

    def add(video: MediaItem, label: Label, frame: int, track: int | None, mask: np.ndarray, **extra: Any) -> None:
        annotation = annotation_create(
            tenant=tenant,
            media=video,
            label=label,
            rle=mask_encode(mask),
            author=world.manager,
            frame=frame,
            track=track,
            **extra,
        )
        if annotation.proposed:
            dataset.proposed.append(annotation)
        else:
            dataset.tracks.setdefault((video.pk, annotation.track), {})[frame] = annotation.rle

    h, w = HEIGHT, WIDTH
    sitting = {str(pose.pk): "sitting"}
    for frame in range(3):
        answers = {str(pose.pk): "lying"} if frame == 2 else sitting
        add(walk, cat, frame, 1, box_mask(h, w, 4 + 3 * frame, 6, 20 + 3 * frame, 22), answers=answers)
    add(walk, dog, 1, 2, box_mask(h, w, 40, 20, 60, 40))
    add(walk, cat, 3, 2, box_mask(h, w, 38, 18, 58, 38), answers={str(pose.pk): "lying"})
    add(walk, cat, 4, 2, box_mask(h, w, 36, 16, 56, 36))
    for frame in range(2):
        add(walk, cat, frame, 3, box_mask(h, w, 25, 25, 35, 35), proposed=True, source=Annotation.Source.MODEL)
    add(walk, cat, 4, None, box_mask(h, w, 0, 40, 10, 48))  # no track given: a new one, 4
    for frame in range(3):
        add(pan, dog, frame, 7, box_mask(24, 32, frame, frame, 10 + frame, 12))
    annotation_create(
        tenant=tenant, media=image, label=cat, rle=mask_encode(box_mask(48, 64, 1, 1, 9, 9)), author=world.manager
    )
    return dataset


def centroid_of(rle: dict) -> list[float]:
    rows, columns = np.nonzero(mask_decode(rle))
    return [round(float(columns.mean()) + 0.5, 2), round(float(rows.mean()) + 0.5, 2)]


@pytest.fixture
def dataset(world: World) -> VideoDataset:
    return make_video_dataset(world)


def by_video_track(data: dict[str, Any]) -> dict[tuple[int, int | None], dict[str, Any]]:
    return {(entry["video_id"], entry["track"]): entry for entry in data["annotations"]}


# --- YouTube-VIS -----------------------------------------------------------------------------------


def test_it_exports_youtube_vis_that_a_loader_accepts_and_that_reads_back_to_the_stored_masks(
    dataset: VideoDataset, tmp_path: Path
) -> None:
    report, path = run_export(dataset.project, tmp_path, format="youtube-vis")
    assert path.suffix == ".json"
    data = json.loads(path.read_text())
    assert check_youtube_vis(data) == []

    videos = {video["id"]: video for video in data["videos"]}
    assert set(videos) == {dataset.walk.pk, dataset.pan.pk}
    assert videos[dataset.walk.pk]["file_names"] == [f"walk in park/{n}.jpg" for n in range(FRAMES)]
    assert videos[dataset.pan.pk]["file_names"] == ["pan/0.jpg", "pan/1.jpg", "pan/2.jpg"]
    assert [(v["length"], v["width"], v["height"]) for v in data["videos"]] == [(5, 64, 48), (3, 32, 24)]

    read = read_youtube_vis(path.read_bytes())
    entries = by_video_track(data)
    assert set(entries) == set(dataset.tracks)  # the proposed track 3 is left out
    for track in read.tracks:
        entry = next(e for e in data["annotations"] if e["id"] == track.id)
        stored = dataset.tracks[(track.video_id, entry["track"])]
        assert track.frames == stored
        length = videos[track.video_id]["length"]
        assert len(entry["segmentations"]) == len(entry["centroids"]) == length
        for frame in range(length):
            if frame in stored:
                assert entry["centroids"][frame] == centroid_of(stored[frame])
                assert entry["bboxes"][frame] is not None
            else:
                assert entry["segmentations"][frame] is entry["centroids"][frame] is entry["bboxes"][frame] is None


def test_it_gives_a_track_its_most_frequent_label_and_answers(dataset: VideoDataset, tmp_path: Path) -> None:
    _, path = run_export(dataset.project, tmp_path, format="youtube-vis")
    data = json.loads(path.read_text())
    entries = by_video_track(data)
    walk = dataset.walk.pk
    # Track 2 is a dog on frame 1 and a cat on frames 3 and 4: a cat; its answer is the cat frame's.
    assert entries[(walk, 2)]["category_id"] == dataset.cat.pk
    assert entries[(walk, 2)]["attributes"] == {"Pose": "lying"}
    # Track 1 answered sitting twice and lying once.
    assert entries[(walk, 1)]["attributes"] == {"Pose": "sitting"}
    assert entries[(walk, 4)]["category_id"] == dataset.cat.pk
    assert entries[(dataset.pan.pk, 7)]["category_id"] == dataset.dog.pk
    categories = {c["id"]: c for c in data["categories"]}
    assert categories[dataset.cat.pk]["name"] == "cat" and categories[dataset.cat.pk]["color"] == "#ff8800"
    assert categories[dataset.cat.pk]["questions"][0]["text"] == "Pose"


def test_it_keeps_pre_annotations_only_when_asked_and_marks_them(dataset: VideoDataset, tmp_path: Path) -> None:
    report, _ = run_export(dataset.project, tmp_path, format="youtube-vis")
    assert report["proposed_left_out"] == 2

    report, path = run_export(dataset.project, tmp_path, format="youtube-vis", include_proposed=True)
    data = json.loads(path.read_text())
    assert check_youtube_vis(data) == []
    proposed = by_video_track(data)[(dataset.walk.pk, 3)]
    assert proposed["proposed_frames"] == [0, 1]
    assert [s is not None for s in proposed["segmentations"]] == [True, True, False, False, False]
    assert "proposed_frames" not in by_video_track(data)[(dataset.walk.pk, 1)]
    assert report["proposed_left_out"] == 0 and report["tracks"] == 5


def test_it_reports_videos_tracks_frames_and_what_it_left_out(dataset: VideoDataset, tmp_path: Path) -> None:
    report, path = run_export(dataset.project, tmp_path, format="youtube-vis")
    assert {key: report[key] for key in ("videos", "frames", "tracks", "masks", "categories")} == {
        "videos": 2,
        "frames": 8,
        "tracks": 4,
        "masks": 10,
        "categories": 2,
    }
    assert report["images_left_out"] == 1
    assert report["skipped_count"] == 0 and report["file"] == path.name


def test_it_zips_the_frames_under_the_names_the_file_gives(dataset: VideoDataset, tmp_path: Path) -> None:
    report, path = run_export(dataset.project, tmp_path, format="youtube-vis", include_images=True)
    assert path.suffix == ".zip"
    with zipfile.ZipFile(path) as archive:
        data = json.loads(archive.read("annotations/instances.json"))
        assert check_youtube_vis(data) == []
        for video in data["videos"]:
            item = MediaItem.objects.get(pk=video["id"])
            for frame, name in enumerate(video["file_names"]):
                with default_storage.open(frame_name(item.frames_prefix, frame), "rb") as stored:
                    assert archive.read(f"JPEGImages/{name}") == stored.read()
        assert len([n for n in archive.namelist() if n.startswith("JPEGImages/")]) == 8


def test_it_leaves_out_a_video_whose_frames_are_not_extracted(dataset: VideoDataset, tmp_path: Path) -> None:
    MediaItem.objects.filter(pk=dataset.pan.pk).update(state=MediaItem.State.FAILED)
    report, path = run_export(dataset.project, tmp_path, format="youtube-vis")
    data = json.loads(path.read_text())
    assert [video["id"] for video in data["videos"]] == [dataset.walk.pk]
    assert report["skipped"] == [
        {"name": "pan.mov", "reason": "its frames are not extracted (failed): the video is not in the export"}
    ]
    assert check_youtube_vis(data) == []


def test_it_lists_an_annotation_beyond_the_video_instead_of_writing_it(dataset: VideoDataset, tmp_path: Path) -> None:
    stray = Annotation.objects.filter(media=dataset.pan, track=7, frame=2).get()
    Annotation.objects.filter(pk=stray.pk).update(frame=9)
    report, path = run_export(dataset.project, tmp_path, format="youtube-vis")
    assert report["skipped"] == [
        {"name": f"pan.mov, annotation {stray.pk}", "reason": "its frame 9 is beyond the video's 3 frames"}
    ]
    assert check_youtube_vis(json.loads(path.read_text())) == []


def test_it_refuses_a_video_format_for_a_project_of_images(world: World, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="holds images only"):
        run_export(world.demo.project, tmp_path, format="youtube-vis")


# --- COCO-video ------------------------------------------------------------------------------------


def test_it_exports_coco_video_that_pycocotools_loads(dataset: VideoDataset, tmp_path: Path) -> None:
    report, path = run_export(dataset.project, tmp_path, format="coco-video")
    coco = COCO(str(path))
    data = json.loads(path.read_text())
    assert len(coco.imgs) == 8 and len(coco.anns) == report["masks"] == 10
    videos = {video["id"]: video for video in data["videos"]}
    assert videos[dataset.walk.pk]["name"] == "walk in park"
    images = {image["id"]: image for image in data["images"]}
    for annotation in data["annotations"]:
        image = images[annotation["image_id"]]
        stored = dataset.tracks[(annotation["video_id"], annotation["track"])][image["frame_id"]]
        assert image["file_name"] == f"{videos[annotation['video_id']]['name']}/{image['frame_id']}.jpg"
        assert np.array_equal(coco.annToMask(annotation).astype(bool), mask_decode(stored))
        assert annotation["centroid"] == centroid_of(stored)
        assert "proposed" not in annotation
    # One instance id per track, the same on each of its frames.
    walk_track_1 = {a["instance_id"] for a in data["annotations"] if a["track"] == 1}
    assert len(walk_track_1) == 1


def test_it_marks_pre_annotations_in_coco_video_when_kept(dataset: VideoDataset, tmp_path: Path) -> None:
    _, path = run_export(dataset.project, tmp_path, format="coco-video", include_proposed=True)
    proposed = [a for a in json.loads(path.read_text())["annotations"] if a.get("proposed")]
    assert sorted(a["track"] for a in proposed) == [3, 3]


def test_it_leaves_videos_out_of_coco_with_a_note(dataset: VideoDataset, tmp_path: Path) -> None:
    report, path = run_export(dataset.project, tmp_path, format="coco")
    assert [image["id"] for image in json.loads(path.read_text())["images"]] == [dataset.image.pk]
    assert {entry["name"] for entry in report["skipped"]} == {"walk in park.mp4", "pan.mov"}


# --- DAVIS -------------------------------------------------------------------------------------------


def test_it_exports_davis_palette_pngs_for_every_frame(dataset: VideoDataset, tmp_path: Path) -> None:
    report, path = run_export(dataset.project, tmp_path, format="davis")
    assert path.suffix == ".zip"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        index = json.loads(archive.read("davis.json"))
        videos = {video["id"]: video for video in index["videos"]}
        walk = videos[dataset.walk.pk]
        assert walk["name"] == "walk in park" and walk["length"] == FRAMES
        # Objects numbered in track order (track 3 holds only pre-annotations, left out).
        assert [(o["number"], o["track"], o["label"]) for o in walk["objects"]] == [
            (1, 1, "cat"),
            (2, 2, "cat"),
            (3, 4, "cat"),
        ]
        for video in index["videos"]:
            for frame in range(video["length"]):
                png = archive.read(f"Annotations/{video['name']}/{frame:05d}.png")
                with Image.open(io.BytesIO(png)) as image:
                    assert image.mode == "P"
                    assert image.getpalette()[:9] == davis_palette()[:3].ravel().tolist()
                indices = read_frame_png(png)
                assert indices.shape == (video["height"], video["width"])
                expected = np.zeros(indices.shape, dtype=np.uint8)
                for obj in video["objects"]:
                    stored = dataset.tracks[(video["id"], obj["track"])]
                    if frame in stored:
                        expected[mask_decode(stored[frame])] = obj["number"]
                assert np.array_equal(indices, expected)
    assert not [n for n in names if n.startswith("JPEGImages/")]
    assert report["videos"] == 2 and report["tracks"] == 4 and report["frames"] == 8


def test_it_zips_davis_frames_beside_their_pngs(dataset: VideoDataset, tmp_path: Path) -> None:
    _, path = run_export(dataset.project, tmp_path, format="davis", include_images=True)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    for frame in range(FRAMES):
        assert {f"JPEGImages/walk in park/{frame:05d}.jpg", f"Annotations/walk in park/{frame:05d}.png"} <= names


# --- command, job, page, API ---------------------------------------------------------------------------


def test_the_command_exports_youtube_vis(dataset: VideoDataset, tmp_path: Path) -> None:
    out = tmp_path / "clips.json"
    stdout = io.StringIO()
    call_command(
        "export_dataset",
        "--project",
        str(dataset.project.pk),
        "--format",
        "youtube-vis",
        "--out",
        str(out),
        stdout=stdout,
    )
    assert check_youtube_vis(json.loads(out.read_text())) == []
    assert "clips.json (youtube-vis" in stdout.getvalue() and "2 videos, 8 frames, 4 tracks" in stdout.getvalue()
    with pytest.raises(CommandError, match="a .zip file"):
        call_command("export_dataset", "--project", str(dataset.project.pk), "--format", "davis", "--out", str(out))


def test_the_job_runs_a_video_export_and_reports_its_counts(world: World, dataset: VideoDataset) -> None:
    job = Job.objects.create(
        organization=world.demo.org,
        project=dataset.project,
        kind="export_dataset",
        state=Job.State.RUNNING,
        params={"format": "davis"},
        created_by=world.manager,
    )
    report = run_export_dataset(job, JobProgress(job))
    assert (report["videos"], report["frames"], report["tracks"], report["masks"]) == (2, 8, 4, 10)
    assert job.result_file.name.endswith("/clips-davis.zip")
    with job.result_file.open("rb") as handle, zipfile.ZipFile(handle) as archive:
        assert "Annotations/pan/00002.png" in archive.namelist()


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_project_page_offers_and_starts_video_exports(world: World, dataset: VideoDataset) -> None:
    project_url = dataset.project.get_absolute_url()
    page = client_for(world.manager).get(project_url).content.decode()
    for value in ("youtube-vis", "coco-video", "davis"):
        assert f'<option value="{value}">' in page
    assert (
        '<option value="davis">'
        not in client_for(world.manager).get(world.demo.project.get_absolute_url()).content.decode()
    )

    url = reverse("dataset_export", kwargs={"org_slug": "demo-lab", "project_id": dataset.project.pk})
    response = client_for(world.manager).post(url, {"format": "davis", "include_images": "on"})
    job = Job.objects.get(kind="export_dataset")
    assert response.status_code == 302 and job.params["format"] == "davis" and job.params["include_images"]

    outsider = client_for(world.outsider)
    assert outsider.post(url, {"format": "davis"}).status_code == 404
    other = reverse("dataset_export", kwargs={"org_slug": "other-lab", "project_id": dataset.project.pk})
    assert outsider.post(other, {"format": "davis"}).status_code == 404
    assert Job.objects.filter(kind="export_dataset").count() == 1


def test_the_api_starts_a_youtube_vis_export(world: World, dataset: VideoDataset) -> None:
    url = api_url("api_project_export", project_id=dataset.project.pk)
    response = token_client(world.manager).post(url, {"format": "youtube-vis"}, format="json")
    assert response.status_code == 201, response.content
    assert Job.objects.get(pk=response.json()["id"]).params["format"] == "youtube-vis"

    assert token_client(world.outsider).post(url, {"format": "youtube-vis"}, format="json").status_code == 404
    other = api_url("api_project_export", org_slug="other-lab", project_id=dataset.project.pk)
    assert token_client(world.outsider).post(other, {"format": "youtube-vis"}, format="json").status_code == 404
    bad = token_client(world.manager).post(
        api_url("api_project_export", project_id=world.demo.project.pk), {"format": "davis"}, format="json"
    )
    assert bad.status_code == 400 and "holds images only" in bad.content.decode()
    assert Job.objects.filter(kind="export_dataset").count() == 1
