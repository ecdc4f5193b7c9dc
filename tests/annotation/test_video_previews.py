"""Previews of video frames with their masks drawn in (annotation.video_previews), for the studio's
timeline while it plays: the masked pixels tinted toward the label's colour and outlined, the rest
the frame's own; an ETag that follows the frame's annotations; the same door as the frame itself.
And the studio page hands its timeline the URL patterns of frames and previews."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from PIL import Image

from annotation.annotations.services import annotation_create, annotation_delete, annotation_update
from annotation.masks import box_to_rle
from annotation.models import Annotation, Label, MediaItem, Project
from annotation.video_previews import ALPHA, composite_mask, label_rgb
from annotation.video_services import frame_name, media_create_video
from platform_core.models import Membership
from platform_core.tenancy import Tenant
from tests.annotation.test_video_files import make_clip
from tests.conftest import World

WIDTH, HEIGHT, FRAMES = 96, 64, 6
BOX = [30, 18, 66, 46]  # x0, y0, x1, y1 of the masked square
GREEN = (0, 200, 60)


@pytest.fixture
def project(world: World) -> Project:
    project = world.demo.project
    project.media_type = Project.MediaType.BOTH
    project.save(update_fields=["media_type"])
    Label.objects.filter(pk=world.demo.label.pk).update(color="#00c83c")
    return project


@pytest.fixture
def video(world: World, project: Project) -> MediaItem:
    data = make_clip(frames=FRAMES, width=WIDTH, height=HEIGHT)
    return media_create_video(project=project, name="clip.mp4", data=data, uploaded_by=world.manager)


def tenant_of(world: World) -> Tenant:
    return Tenant(
        org=world.demo.org, membership=Membership.objects.get(user=world.manager, organization=world.demo.org)
    )


def box_on(world: World, video: MediaItem, frame: int, box: list[int] = BOX) -> Annotation:
    rle = box_to_rle(box, height=HEIGHT, width=WIDTH)
    label = Label.objects.get(pk=world.demo.label.pk)
    return annotation_create(
        tenant=tenant_of(world), media=video, label=label, rle=rle, author=world.manager, frame=frame, track=1
    )


def preview_url(item: MediaItem, frame: int, org_slug: str = "demo-lab") -> str:
    return reverse("media_frame_preview", kwargs={"org_slug": org_slug, "video_id": item.pk, "frame": frame})


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        return np.asarray(image.convert("RGB"), dtype=np.float32)


def stored_frame(item: MediaItem, frame: int) -> bytes:
    with default_storage.open(frame_name(item.frames_prefix, frame), "rb") as handle:
        return handle.read()


# --- the picture -----------------------------------------------------------------------------------


def test_it_tints_the_masked_pixels_toward_the_label_colour_and_leaves_the_rest(world: World, video: MediaItem) -> None:
    box_on(world, video, frame=2)
    response = signed_in(world.owner).get(preview_url(video, 2))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    preview = pixels(response.content)
    frame = pixels(stored_frame(video, 2))
    assert preview.shape == frame.shape == (HEIGHT, WIDTH, 3)
    x0, y0, x1, y1 = BOX
    # Inside (away from the outline and JPEG's 8-pixel blocks at the edge): the blend of frame and colour.
    inside = (slice(y0 + 5, y1 - 5), slice(x0 + 5, x1 - 5))
    expected = frame[inside] * (1 - ALPHA) + np.array(GREEN, np.float32) * ALPHA
    assert np.abs(preview[inside] - expected).mean() < 4
    assert np.abs(preview[inside] - np.array(GREEN)).mean() < np.abs(frame[inside] - np.array(GREEN)).mean() - 20
    # Outside, well away from the mask: the frame's own pixels (up to JPEG's loss).
    outside = np.ones((HEIGHT, WIDTH), bool)
    outside[max(0, y0 - 10) : y1 + 10, max(0, x0 - 10) : x1 + 10] = False
    assert np.abs(preview[outside] - frame[outside]).mean() < 3


def test_it_serves_a_frame_without_annotations_as_it_is_stored(world: World, video: MediaItem) -> None:
    box_on(world, video, frame=2)
    response = signed_in(world.owner).get(preview_url(video, 3))
    assert response.status_code == 200
    assert response.content == stored_frame(video, 3)


def test_it_composites_a_mask_with_its_outline_exactly() -> None:
    picture = np.full((6, 7, 3), 100, np.float32)
    mask = np.zeros((6, 7), bool)
    mask[1:5, 0:4] = True  # touches the image's left edge
    composite_mask(picture, mask, (200, 0, 40))
    outline = mask.copy()
    outline[2:4, 1:3] = False  # the pixels whose four neighbours are all in the mask
    assert (picture[outline] == [200, 0, 40]).all()
    blend = [100 * (1 - ALPHA) + 200 * ALPHA, 100 * (1 - ALPHA), 100 * (1 - ALPHA) + 40 * ALPHA]
    assert np.allclose(picture[2:4, 1:3], blend)
    assert (picture[~mask] == 100).all()


def test_it_reads_label_colours_and_falls_back_on_a_bad_one() -> None:
    assert label_rgb("#00c83c") == GREEN
    assert label_rgb("red") == label_rgb("#12") == label_rgb("#zzzzzz") == (31, 119, 180)


# --- caching -----------------------------------------------------------------------------------------


def test_it_changes_the_etag_when_an_annotation_on_the_frame_changes(world: World, video: MediaItem) -> None:
    client = signed_in(world.owner)
    empty = client.get(preview_url(video, 1))
    assert empty["Cache-Control"] == "private, no-cache"
    assert empty["X-Content-Type-Options"] == "nosniff"
    annotation = box_on(world, video, frame=1)
    first = client.get(preview_url(video, 1))
    assert first["ETag"] != empty["ETag"]
    again = client.get(preview_url(video, 1), HTTP_IF_NONE_MATCH=first["ETag"])
    assert (again.status_code, again.content, again["ETag"]) == (304, b"", first["ETag"])

    # An object on another frame changes nothing here.
    box_on(world, video, frame=4)
    assert client.get(preview_url(video, 1), HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304

    # A new version (the mask moved) is a new picture.
    changed = annotation_update(
        tenant=tenant_of(world),
        annotation=annotation,
        expected_version=1,
        author=world.manager,
        rle=box_to_rle([10, 10, 40, 40], height=HEIGHT, width=WIDTH),
    )
    second = client.get(preview_url(video, 1), HTTP_IF_NONE_MATCH=first["ETag"])
    assert second.status_code == 200
    assert second["ETag"] != first["ETag"]
    assert not np.array_equal(pixels(second.content), pixels(first.content))

    # A new label colour, then the object deleted: each a new ETag; gone, the frame is as stored.
    Label.objects.filter(pk=world.demo.label.pk).update(color="#ff0000")
    recoloured = client.get(preview_url(video, 1))
    assert recoloured["ETag"] not in (first["ETag"], second["ETag"])
    annotation_delete(tenant=tenant_of(world), annotation=changed, expected_version=2, actor=world.manager)
    deleted = client.get(preview_url(video, 1))
    assert deleted["ETag"] == empty["ETag"]
    assert deleted.content == stored_frame(video, 1)


# --- the door ------------------------------------------------------------------------------------------


def test_it_answers_404_to_another_organisations_member(world: World, video: MediaItem) -> None:
    box_on(world, video, frame=0)
    assert signed_in(world.owner).get(preview_url(video, 0)).status_code == 200
    outsider = signed_in(world.outsider)
    for url in (preview_url(video, 0), preview_url(video, 0, org_slug="other-lab")):
        assert outsider.get(url).status_code == 404


def test_it_answers_404_to_an_annotator_outside_the_items_task(world: World, video: MediaItem) -> None:
    annotator = signed_in(world.annotator)
    assert annotator.get(preview_url(video, 0)).status_code == 404
    MediaItem.objects.filter(pk=video.pk).update(task=world.demo.task)
    assert annotator.get(preview_url(video, 0)).status_code == 200


def test_it_has_no_preview_for_an_image_a_missing_frame_or_a_video_not_ready(world: World, video: MediaItem) -> None:
    client = signed_in(world.owner)
    assert client.get(preview_url(world.demo.media, 0)).status_code == 404
    assert client.get(preview_url(video, FRAMES)).status_code == 404
    MediaItem.objects.filter(pk=video.pk).update(state=MediaItem.State.PROCESSING)
    assert client.get(preview_url(video, 0)).status_code == 404


def test_it_sends_an_anonymous_visitor_to_sign_in(video: MediaItem) -> None:
    response = Client().get(preview_url(video, 0))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


# --- the studio page ---------------------------------------------------------------------------------


def test_it_hands_the_studio_the_frame_and_preview_url_patterns(world: World, video: MediaItem) -> None:
    MediaItem.objects.filter(pk=video.pk).update(task=world.demo.task)
    url = reverse("studio", kwargs={"org_slug": "demo-lab", "task_id": world.demo.task.pk, "media_id": video.pk})
    response = signed_in(world.annotator).get(url)
    assert response.status_code == 200
    html = response.content.decode()
    data = json.loads(html.split('<script id="studio-data" type="application/json">', 1)[1].split("</script>", 1)[0])
    timeline = data["video"]
    assert (timeline["ready"], timeline["frameCount"], timeline["fps"]) == (True, FRAMES, video.fps)
    frame_url = reverse("media_frame", kwargs={"org_slug": "demo-lab", "video_id": video.pk, "frame": 3})
    assert timeline["frameUrl"].replace("{n}", "3") == frame_url
    assert timeline["previewUrl"].replace("{n}", "3") == preview_url(video, 3)
    # On a video the smart tool's fallback (and propagation's) is the optical-flow tracker.
    assert [m["key"] for m in data["smart"]["models"]] == ["optical-flow"]
    assert data["smart"]["default"] == "optical-flow"
    assert 'data-testid="timeline"' in html and f"of {FRAMES} frames" in html
    # An image's studio has no timeline.
    image_url = reverse(
        "studio", kwargs={"org_slug": "demo-lab", "task_id": world.demo.task.pk, "media_id": world.demo.media.pk}
    )
    image_page = signed_in(world.annotator).get(image_url)
    assert image_page.context["studio_data"]["video"] is None
    assert 'data-testid="timeline"' not in image_page.content.decode()
