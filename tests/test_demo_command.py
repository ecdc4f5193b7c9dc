"""``manage.py demo``: the demo organisations, users, projects and photographs, made once, DEBUG only;
and its PartInventory crowd project, which a worker can go through from the printed study link."""

from __future__ import annotations

import io
import re
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.test import Client
from skimage.measure import label as connected_components

from annotation.masks import mask_decode
from annotation.models import Annotation, MediaItem, Project
from crowd.models import CrowdAssignment, CrowdBatch, GoldItem, QualificationAttempt, QualificationTest
from platform_core.models import Membership, Organization


@pytest.mark.django_db
def test_it_refuses_to_create_demo_users_outside_debug(settings: Any) -> None:
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("demo")
    assert not Organization.objects.exists()


@pytest.mark.django_db
def test_it_creates_the_demo_once(settings: Any) -> None:
    settings.DEBUG = True
    call_command("demo", stdout=io.StringIO())
    call_command("demo", stdout=io.StringIO())  # a second run changes nothing
    assert set(Organization.objects.values_list("name", flat=True)) == {"Demo Lab", "Other Lab"}
    assert set(Membership.objects.values_list("user__username", "organization__slug", "role")) == {
        ("manager", "demo-lab", "manager"),
        ("annotator", "demo-lab", "annotator"),
        ("outsider", "other-lab", "owner"),
    }
    for username in ("manager", "annotator", "outsider"):
        assert authenticate(username=username, password="demo") is not None
    project = Project.objects.get(organization__slug="demo-lab", name="Street and kitchen scenes")
    assert project.labels.count() == 5
    assert project.media_type == Project.MediaType.BOTH
    photos = MediaItem.objects.filter(project=project, kind=MediaItem.Kind.IMAGE)
    assert photos.count() == 6
    # And a short clip, its frames extracted, in no task.
    clip = MediaItem.objects.get(project=project, kind=MediaItem.Kind.VIDEO)
    assert (clip.original_name, clip.state, clip.task) == ("coffee-pan.mp4", MediaItem.State.READY, None)
    assert clip.frame_count == 24 and clip.file.storage.exists(f"{clip.frames_prefix}/23.jpg")
    astronaut = photos.get(original_name="astronaut.png")
    assert (astronaut.width, astronaut.height) == (512, 512)
    assert all(item.file.storage.exists(item.file.name) for item in photos)
    assert Project.objects.filter(organization__slug="demo-lab").count() == 2
    assert CrowdBatch.objects.count() == 4 and GoldItem.objects.count() == 7


def _demo_links(settings: Any) -> tuple[str, list[str]]:
    settings.DEBUG = True
    out = io.StringIO()
    call_command("demo", stdout=out)
    return out.getvalue(), re.findall(r"^link (\S+) \(PartInventory: (\w+)\)$", out.getvalue(), re.MULTILINE)


@pytest.mark.django_db
def test_it_adds_a_partinventory_crowd_project(settings: Any) -> None:
    output, links = _demo_links(settings)
    crowd = Project.objects.get(name="PartInventory parts")
    assert set(crowd.labels.values_list("name", "kind")) == {(p, "mask") for p in ("head", "torso", "leg", "tail")}
    assert crowd.media.count() == 6
    # Every part object is a mask drawn as shapes; its gold answer is how many shapes it has.
    for gold in GoldItem.objects.filter(project=crowd).select_related("annotation"):
        shapes = connected_components(mask_decode(gold.annotation.rle), connectivity=1).max()
        assert gold.answer == ("one" if shapes == 1 else "many"), gold
    test = QualificationTest.objects.get(project=crowd)
    assert test.question.label.name == "leg"
    qualifying = GoldItem.objects.filter(question=test.question, purpose__in=["qualification", "both"])
    assert qualifying.count() >= test.item_count
    batches = CrowdBatch.objects.filter(project=crowd)
    assert {(b.state, b.provider, b.assignments_per_item, b.gold_rate) for b in batches} == {("open", "link", 3, 0.2)}
    assert all(b.completion_code and b.screenout_code and b.object_units for b in batches)
    # The entry URL of every batch is printed at the end.
    assert sorted(part for _, part in links) == ["head", "leg", "tail", "torso"]
    assert {urlsplit(url).path for url, _ in links} == {f"/crowd/link/{b.public_id}/" for b in batches}
    assert output.rstrip().endswith(links[-1][0] + f" (PartInventory: {links[-1][1]})")


@pytest.mark.django_db
def test_it_lets_a_worker_pass_the_demo_test_and_see_a_part_over_its_photo(settings: Any) -> None:
    _, links = _demo_links(settings)
    url = {part: link for link, part in links}["head"]
    path = urlsplit(url).path
    worker = Client()
    entry = worker.get(f"{path}?{urlencode({'PROLIFIC_PID': 'p1', 'STUDY_ID': 's', 'SESSION_ID': 'v1'})}")
    assert entry.status_code == 302 and entry["Location"].startswith("/crowd/qualify/")
    attempt = QualificationAttempt.objects.get()
    gold = GoldItem.objects.in_bulk(attempt.items)
    answers = {f"answer-{n}": gold[pk].answer for n, pk in enumerate(attempt.items)}
    task = worker.post(entry["Location"], answers)
    assert task.status_code == 302 and task["Location"].startswith("/crowd/task/")
    page = worker.get(task["Location"]).content.decode()
    assert "One or many instances?" in page and "head" in page
    overlay = re.search(r'<img class="crowd-overlay" src="([^"]+)"', page).group(1)
    response = worker.get(overlay)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assignment = CrowdAssignment.objects.get()
    assert Annotation.objects.get(pk=assignment.annotation_id).label.name == "head"
