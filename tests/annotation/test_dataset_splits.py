"""Saved train / val / test splits: deterministic for a seed, stratified by each item's most frequent
label, checked inputs; exports of one subset; the command, the REST endpoint and the page."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from annotation.datasets.export import export_check
from annotation.datasets.options import ExportOptions
from annotation.datasets.splits import dataset_split_create, item_strata, split_assign
from annotation.masks import box_to_rle, rle_area, rle_bbox
from annotation.models import Annotation, DatasetSplit, DatasetSplitItem, Label, MediaItem, Project
from platform_core.models import Job
from tests.annotation.dataset_project import run_export
from tests.api_client import api_url, token_client
from tests.conftest import World
from tests.factories import ProjectFactory, make_image

RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}


# --- the assignment ---------------------------------------------------------------------------------


def strata_of(sizes: dict[Any, int]) -> dict[int, Any]:
    strata: dict[int, Any] = {}
    next_id = 1
    for stratum, size in sizes.items():
        for _ in range(size):
            strata[next_id] = stratum
            next_id += 1
    return strata


def per_stratum(strata: dict[int, Any], subsets: dict[int, str]) -> dict[Any, Counter]:
    counts: dict[Any, Counter] = {}
    for item_id, stratum in strata.items():
        counts.setdefault(stratum, Counter())[subsets[item_id]] += 1
    return counts


def test_it_gives_the_same_split_for_the_same_seed_and_another_for_another() -> None:
    strata = strata_of({1: 60, 2: 30, None: 10})
    first = split_assign(strata, RATIOS, seed=7)
    assert split_assign(dict(reversed(list(strata.items()))), RATIOS, seed=7) == first  # input order does not matter
    assert split_assign(strata, RATIOS, seed=8) != first
    assert set(first) == set(strata)


def test_it_cuts_every_stratum_by_the_ratios() -> None:
    strata = strata_of({1: 50, 2: 30, None: 20})
    subsets = split_assign(strata, RATIOS, seed=0)
    counts = per_stratum(strata, subsets)
    assert counts[1] == Counter(train=40, val=5, test=5)
    assert counts[2] == Counter(train=24, val=3, test=3)
    assert counts[None] == Counter(train=16, val=2, test=2)


def test_it_keeps_every_subset_within_one_item_of_its_share() -> None:
    strata = strata_of({1: 7, 2: 7, 3: 7, 4: 3, 5: 1})
    subsets = split_assign(strata, RATIOS, seed=3)
    total = Counter(subsets.values())
    size = len(strata)
    for subset, ratio in RATIOS.items():
        assert abs(total[subset] - size * ratio) < 1, (subset, total)
    for stratum, counts in per_stratum(strata, subsets).items():
        stratum_size = sum(counts.values())
        for subset, ratio in RATIOS.items():
            assert abs(counts[subset] - stratum_size * ratio) < 1, (stratum, counts)


def test_it_gives_nothing_to_a_subset_with_a_zero_ratio() -> None:
    subsets = split_assign(strata_of({1: 9, 2: 4}), {"train": 0.7, "val": 0.3, "test": 0.0}, seed=1)
    assert Counter(subsets.values()) == Counter(train=9, val=4)


# --- on a project ---------------------------------------------------------------------------------------


class Stratified:
    """20 items: 10 mostly “cat”, 6 mostly “dog”, 4 without objects."""

    def __init__(self, world: World) -> None:
        self.project = ProjectFactory(organization=world.demo.org, name="To split")
        self.cat = Label.objects.create(project=self.project, name="cat", order=0)
        self.dog = Label.objects.create(project=self.project, name="dog", order=1)
        self.items: dict[str, list[MediaItem]] = {"cat": [], "dog": [], "none": []}
        for index in range(20):
            item = make_image(self.project, name=f"{index}.png", width=16, height=16)
            kind = "cat" if index < 10 else "dog" if index < 16 else "none"
            self.items[kind].append(item)
            if kind == "cat":
                self.add(item, self.cat, 2)
                self.add(item, self.dog, 1)
            elif kind == "dog":
                self.add(item, self.dog, 2)
                self.add(item, self.cat, 1)
                # Proposed objects are not counted: three of them do not make this a cat.
                self.add(item, self.cat, 3, proposed=True)

    def add(self, item: MediaItem, label: Label, count: int, proposed: bool = False) -> None:
        rle = box_to_rle([1, 1, 5, 5], height=16, width=16)
        for _ in range(count):
            Annotation.objects.create(
                media=item, label=label, rle=rle, bbox=rle_bbox(rle), area=rle_area(rle), proposed=proposed
            )


@pytest.fixture
def stratified(world: World) -> Stratified:
    return Stratified(world)


def test_it_puts_each_item_in_the_stratum_of_its_most_frequent_label(stratified: Stratified) -> None:
    strata = item_strata(stratified.project)
    assert {strata[item.pk] for item in stratified.items["cat"]} == {stratified.cat.pk}
    assert {strata[item.pk] for item in stratified.items["dog"]} == {stratified.dog.pk}
    assert {strata[item.pk] for item in stratified.items["none"]} == {None}
    # A tie goes to the label first in the project's order.
    tied = stratified.items["none"][0]
    stratified.add(tied, stratified.dog, 1)
    stratified.add(tied, stratified.cat, 1)
    assert item_strata(stratified.project)[tied.pk] == stratified.cat.pk


def test_it_saves_a_stratified_deterministic_split(stratified: Stratified, world: World) -> None:
    ratios = {"train": 0.5, "val": 0.5, "test": 0.0}
    split = dataset_split_create(
        project=stratified.project, name="v1", ratios=[0.5, 0.5, 0], seed=4, actor=world.manager
    )
    assert (split.seed, split.ratios, split.created_by) == (4, ratios, world.manager)
    subsets = dict(split.items.values_list("media_id", "subset"))
    assert len(subsets) == 20
    for kind, size in (("cat", 10), ("dog", 6), ("none", 4)):
        counts = Counter(subsets[item.pk] for item in stratified.items[kind])
        assert counts == Counter(train=size // 2, val=size // 2), kind
    again = dataset_split_create(project=stratified.project, name="v2", ratios="0.5,0.5,0", seed=4)
    assert dict(again.items.values_list("media_id", "subset")) == subsets


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"ratios": "0.8,0.1"}, "ratios", "Give three numbers (train, val, test), not 2."),
        ({"ratios": "0.8,0.3,0.1"}, "ratios", "The ratios add up to 1.2; they must add up to 1."),
        ({"ratios": "a,b,c"}, "ratios", "Give three numbers for train, val and test, e.g. 0.8,0.1,0.1."),
        ({"ratios": [1.2, -0.1, -0.1]}, "ratios", "Each ratio is between 0 and 1."),
        ({"name": " "}, "name", "Give the split a name, e.g. v1."),
        ({"name": "taken"}, "name", "The project already has a split named “taken”: choose another name."),
        ({"seed": -1}, "seed", "The seed is a whole number from 0 to 9223372036854775807."),
    ],
)
def test_it_refuses_bad_inputs(stratified: Stratified, changes: dict[str, Any], field: str, message: str) -> None:
    dataset_split_create(project=stratified.project, name="taken", ratios=RATIOS, seed=0)
    values = {"name": "new", "ratios": RATIOS, "seed": 0, **changes}
    with pytest.raises(ValidationError) as info:
        dataset_split_create(project=stratified.project, **values)
    assert info.value.message_dict == {field: [message]}
    assert DatasetSplit.objects.filter(project=stratified.project).count() == 1


def test_it_refuses_to_split_an_empty_project(world: World) -> None:
    project = ProjectFactory(organization=world.demo.org, name="Empty")
    with pytest.raises(ValidationError, match="no items to split"):
        dataset_split_create(project=project, name="v1", ratios=RATIOS)
    assert not DatasetSplit.objects.exists()


# --- exports of a subset -----------------------------------------------------------------------------


def test_it_exports_only_the_items_of_a_subset(stratified: Stratified, tmp_path: Path) -> None:
    split = dataset_split_create(project=stratified.project, name="v1", ratios=RATIOS, seed=0)
    val = set(split.items.filter(subset="val").values_list("media_id", flat=True))
    report, path = run_export(stratified.project, tmp_path, split=split.pk, subset="val")
    coco = json.loads(path.read_text())
    assert {image["id"] for image in coco["images"]} == val and report["images"] == len(val) == 2
    assert coco["info"]["export"]["split"] == split.pk and coco["info"]["export"]["subset"] == "val"
    _, whole = run_export(stratified.project, tmp_path, split=split.pk)
    assert len(json.loads(whole.read_text())["images"]) == 20


def test_it_refuses_a_split_of_another_project_or_a_subset_without_a_split(
    stratified: Stratified, world: World
) -> None:
    other = DatasetSplit.objects.create(project=world.demo.project, name="elsewhere", ratios=RATIOS)
    with pytest.raises(ValidationError) as info:
        export_check(stratified.project, ExportOptions.parse({"split": other.pk, "subset": "train"}))
    assert info.value.message_dict == {"split": [f"No split {other.pk} in this project."]}
    with pytest.raises(ValidationError) as info:
        ExportOptions.parse({"subset": "train"})
    assert info.value.message_dict == {"subset": ["Choose the split to take this subset of."]}
    with pytest.raises(ValidationError) as info:
        ExportOptions.parse({"split": 1, "subset": "holdout"})
    assert info.value.message_dict == {"subset": ["Unknown subset 'holdout': use train, val, test."]}


# --- command, REST, page -----------------------------------------------------------------------------


def test_it_splits_from_the_command_line(stratified: Stratified) -> None:
    out = io.StringIO()
    project = stratified.project
    call_command(
        "split_dataset",
        "--project",
        str(project.pk),
        "--ratios",
        "0.8,0.1,0.1",
        "--seed",
        "0",
        "--name",
        "v1",
        stdout=out,
    )
    split = DatasetSplit.objects.get(project=project, name="v1")
    assert f"Split 'v1' (id {split.pk}) of 'To split': train 16, val 2, test 2." in out.getvalue()


def splits_api(project: Project, org_slug: str = "demo-lab") -> str:
    return api_url("api_project_splits", org_slug=org_slug, project_id=project.pk)


def test_it_creates_and_lists_splits_through_the_api(stratified: Stratified, world: World) -> None:
    client = token_client(world.manager)
    response = client.post(
        splits_api(stratified.project), {"name": "v1", "ratios": [0.8, 0.1, 0.1], "seed": 3}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["seed"], body["ratios"], body["counts"]) == (
        "v1",
        3,
        RATIOS,
        {"train": 16, "val": 2, "test": 2},
    )
    listed = client.get(splits_api(stratified.project)).json()
    assert [row["id"] for row in listed["results"]] == [body["id"]]
    assert listed["results"][0]["counts"] == body["counts"]
    bad = client.post(splits_api(stratified.project), {"name": "v2", "ratios": [0.5, 0.1, 0.1]}, format="json")
    assert bad.status_code == 400 and "ratios" in bad.json()


@pytest.mark.parametrize("who", ["reviewer", "annotator"])
def test_it_refuses_split_api_calls_below_manager(stratified: Stratified, world: World, who: str) -> None:
    client = token_client(getattr(world, who))
    assert client.get(splits_api(stratified.project)).status_code == 403
    body = {"name": "v1", "ratios": [0.8, 0.1, 0.1]}
    assert client.post(splits_api(stratified.project), body, format="json").status_code == 403
    assert not DatasetSplit.objects.exists()


def test_it_answers_404_to_another_organisation_for_splits(stratified: Stratified, world: World) -> None:
    client = token_client(world.outsider)
    body = {"name": "v1", "ratios": [0.8, 0.1, 0.1]}
    for org_slug in ("demo-lab", "other-lab"):
        assert client.get(splits_api(stratified.project, org_slug)).status_code == 404
        assert client.post(splits_api(stratified.project, org_slug), body, format="json").status_code == 404
    assert not DatasetSplit.objects.exists()


def page_url(project: Project, org_slug: str = "demo-lab") -> str:
    return reverse("dataset_splits", kwargs={"org_slug": org_slug, "project_id": project.pk})


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_saves_a_split_from_the_page_and_exports_a_subset_from_it(
    stratified: Stratified, world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = client_for(world.manager)
    assert 'data-testid="split-form"' in client.get(page_url(stratified.project)).content.decode()
    response = client.post(page_url(stratified.project), {"name": "v1", "ratios": "0.8,0.1,0.1", "seed": "0"})
    assert response.status_code == 302 and response["Location"] == page_url(stratified.project)
    split = DatasetSplit.objects.get(project=stratified.project)
    page = client.get(page_url(stratified.project)).content.decode()
    assert "<td>v1</td>" in page and f'name="split" value="{split.pk}"' in page

    export_url = reverse("dataset_export", kwargs={"org_slug": "demo-lab", "project_id": stratified.project.pk})
    with django_capture_on_commit_callbacks(execute=True):
        client.post(export_url, {"format": "coco", "split": split.pk, "subset": "test"})
    job = Job.objects.get(kind="export_dataset")
    assert (job.params["split"], job.params["subset"]) == (split.pk, "test")


def test_it_shows_what_is_wrong_with_the_page_form(stratified: Stratified, world: World) -> None:
    response = client_for(world.owner).post(
        page_url(stratified.project), {"name": "v1", "ratios": "1,1,1", "seed": "0"}
    )
    assert response.status_code == 200
    assert "The ratios add up to 3; they must add up to 1." in response.content.decode()
    assert not DatasetSplitItem.objects.exists()


@pytest.mark.parametrize("who", ["reviewer", "annotator"])
def test_it_refuses_the_page_below_manager(stratified: Stratified, world: World, who: str) -> None:
    client = client_for(getattr(world, who))
    assert client.get(page_url(stratified.project)).status_code == 403
    assert (
        client.post(page_url(stratified.project), {"name": "v1", "ratios": "0.8,0.1,0.1", "seed": "0"}).status_code
        == 403
    )
    assert not DatasetSplit.objects.exists()


def test_it_answers_404_to_another_organisation_on_the_page(stratified: Stratified, world: World) -> None:
    client = client_for(world.outsider)
    for org_slug in ("demo-lab", "other-lab"):
        assert client.get(page_url(stratified.project, org_slug)).status_code == 404
        data = {"name": "v1", "ratios": "0.8,0.1,0.1", "seed": "0"}
        assert client.post(page_url(stratified.project, org_slug), data).status_code == 404
    assert not DatasetSplit.objects.exists()
