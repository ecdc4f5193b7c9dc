"""YouTube-VIS and COCO-video files from plain tracks: documents a loader accepts (lists of the
video's length, nulls where an object is absent, boxes and areas as pycocotools computes them),
streamed files equal to the in-memory ones, the check finding each fault injected into a good file,
the reader refusing bad files whole and giving back the masks it was written with, and the
COCO-video variant loaded by pycocotools' COCO."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as coco
from pycocotools.coco import COCO

from annotation.datasets.coco_reading import MAX_PROBLEMS, ImportRefused
from annotation.datasets.youtube_vis import (
    CocoVideoWriter,
    VisCategory,
    VisTrack,
    VisVideo,
    YoutubeVisWriter,
    coco_video_document,
    youtube_vis_document,
)
from annotation.datasets.youtube_vis_reading import check_youtube_vis, read_youtube_vis
from annotation.masks import mask_decode, mask_encode

H, W = 24, 32  # not square, so [height, width] and [width, height] differ
LENGTH = 5


def box_mask(top: int, left: int, height: int, width: int, *, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + height, left : left + width] = True
    return mask


def ring_mask() -> np.ndarray:
    mask = box_mask(4, 6, 12, 14)
    mask[8:12, 10:16] = False  # a hole
    mask[0, W - 1] = True  # and a stray pixel in a corner
    return mask


def sample_masks() -> dict[int, dict[int, np.ndarray]]:
    """Masks by track and frame: track 7 is absent on frames 2 and 4, track 9 is empty on frame 2."""
    return {
        7: {0: box_mask(2, 3, 5, 6), 1: box_mask(3, 4, 5, 6), 3: ring_mask()},
        9: {
            0: box_mask(10, 20, 8, 10),
            1: box_mask(11, 21, 8, 10),
            2: np.zeros((H, W), dtype=bool),
            3: box_mask(0, 0, H, W),
            4: box_mask(20, 28, 4, 4),
        },
    }


def sample_video() -> VisVideo:
    return VisVideo(id=3, file_names=[f"clip/{frame:05d}.jpg" for frame in range(LENGTH)], width=W, height=H)


def sample_categories() -> list[VisCategory]:
    return [VisCategory(1, "cat", "animal", {"color": "#ff0000"}), VisCategory(2, "ball")]


def sample_tracks() -> list[VisTrack]:
    masks = sample_masks()
    return [
        VisTrack(7, 3, 1, {frame: mask_encode(mask) for frame, mask in masks[7].items()}, {"quality": "good"}),
        VisTrack(9, 3, 2, {frame: mask_encode(mask) for frame, mask in masks[9].items()}),
    ]


def sample_document() -> dict[str, Any]:
    return youtube_vis_document([sample_video()], sample_categories(), sample_tracks(), info={"description": "t"})


def as_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def uncompressed(mask: np.ndarray) -> dict[str, Any]:
    """COCO's uncompressed RLE (run lengths down the columns, starting with zeros)."""
    flat = mask.flatten(order="F").astype(np.int8)
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]))
    runs = np.diff(bounds).tolist()
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": runs if flat[0] == 0 else [0, *runs]}


# --- the document ---------------------------------------------------------------------------------


def test_it_writes_a_document_that_passes_the_check() -> None:
    assert check_youtube_vis(json.loads(as_bytes(sample_document()))) == []


def test_it_writes_videos_and_categories_as_loaders_read_them() -> None:
    document = sample_document()

    assert document["videos"] == [
        {"id": 3, "width": W, "height": H, "length": LENGTH, "file_names": [f"clip/{f:05d}.jpg" for f in range(5)]}
    ]
    assert document["categories"] == [
        {"color": "#ff0000", "id": 1, "name": "cat", "supercategory": "animal"},
        {"id": 2, "name": "ball", "supercategory": ""},
    ]
    assert document["info"] == {"description": "t"}


def test_it_gives_every_frame_an_entry_with_null_where_the_object_is_absent() -> None:
    first, second = sample_document()["annotations"]

    for entry in (first, second):
        assert len(entry["segmentations"]) == len(entry["bboxes"]) == len(entry["areas"]) == LENGTH
        assert (entry["length"], entry["width"], entry["height"], entry["iscrowd"]) == (LENGTH, W, H, 0)
    assert [s is None for s in first["segmentations"]] == [False, False, True, False, True]
    assert first["bboxes"][2] is None and first["areas"][4] is None
    # An empty mask counts as absent.
    assert second["segmentations"][2] is None and second["bboxes"][2] is None and second["areas"][2] is None
    assert first["attributes"] == {"quality": "good"} and second["attributes"] == {}


def test_it_computes_boxes_and_areas_as_pycocotools_does() -> None:
    masks = sample_masks()
    first, second = sample_document()["annotations"]

    for entry, track_masks in ((first, masks[7]), (second, masks[9])):
        for frame, mask in track_masks.items():
            if not mask.any():
                continue
            rle = coco.encode(np.asfortranarray(mask.astype(np.uint8)))
            assert entry["areas"][frame] == int(coco.area(rle)) == int(mask.sum())
            assert entry["bboxes"][frame] == coco.toBbox(rle).tolist()
            assert entry["segmentations"][frame]["size"] == [H, W]
    assert first["bboxes"][0] == [3.0, 2.0, 6.0, 5.0]


def test_it_decodes_back_to_the_masks_it_was_given() -> None:
    masks = sample_masks()
    for entry in sample_document()["annotations"]:
        for frame, segmentation in enumerate(entry["segmentations"]):
            expected = masks[entry["id"]].get(frame, np.zeros((H, W), dtype=bool))
            decoded = np.zeros((H, W), dtype=bool) if segmentation is None else mask_decode(segmentation)
            assert np.array_equal(decoded, expected), (entry["id"], frame)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda tracks, video: tracks[0].frames.update({5: mask_encode(box_mask(0, 0, 2, 2))}), "outside video 3"),
        (
            lambda tracks, video: tracks[0].frames.update({1: mask_encode(box_mask(0, 0, 2, 2, shape=(W, H)))}),
            "Track 7, frame 1: The mask is 32×24",
        ),
        (lambda tracks, video: setattr(tracks[1], "id", 7), "Track id 7 is given twice"),
        (lambda tracks, video: setattr(tracks[1], "video_id", 4), "names video 4"),
        (lambda tracks, video: setattr(tracks[1], "category_id", 5), "names category 5"),
        (lambda tracks, video: tracks[0].frames.update({1: {"size": [H, W], "counts": "0o"}}), "Track 7, frame 1"),
    ],
)
def test_it_refuses_to_write_tracks_that_make_no_valid_file(change: Callable, message: str) -> None:
    tracks, video = sample_tracks(), sample_video()
    change(tracks, video)

    with pytest.raises(ValueError, match=message):
        youtube_vis_document([video], sample_categories(), tracks)


def test_it_streams_the_same_file_it_builds_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "vis.json"
    with YoutubeVisWriter(path, sample_categories(), info={"description": "t"}) as writer:
        writer.video(sample_video())
        for track in sample_tracks():
            writer.track(track)

    assert json.loads(path.read_text()) == sample_document()
    assert writer.counts == {"videos": 1, "annotations": 2}


def test_it_streams_an_empty_file_that_passes_the_check(tmp_path: Path) -> None:
    path = tmp_path / "vis.json"
    with YoutubeVisWriter(path, []):
        pass

    assert check_youtube_vis(json.loads(path.read_text())) == []


def test_it_refuses_a_track_before_its_video_in_a_stream(tmp_path: Path) -> None:
    with YoutubeVisWriter(tmp_path / "vis.json", sample_categories()) as writer:
        with pytest.raises(ValueError, match="names video 3"):
            writer.track(sample_tracks()[0])


# --- the check --------------------------------------------------------------------------------------


def _set(path: tuple, value: Any) -> Callable[[dict], None]:
    def change(document: dict) -> None:
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _wrong_size(document: dict) -> None:
    document["annotations"][0]["segmentations"][1] = mask_encode(box_mask(3, 4, 5, 6, shape=(W, H)))


def _undecodable(document: dict) -> None:
    document["annotations"][0]["segmentations"][1]["counts"] += "o"


def _too_few_runs(document: dict) -> None:
    document["annotations"][0]["segmentations"][1]["counts"] = mask_encode(np.ones((H, W - 1), dtype=bool))["counts"]


def _duplicate_track(document: dict) -> None:
    document["annotations"][1]["id"] = document["annotations"][0]["id"]


def _duplicate_video(document: dict) -> None:
    document["videos"].append(copy.deepcopy(document["videos"][0]))


def _short_list(document: dict) -> None:
    document["annotations"][1]["segmentations"].pop()


def _short_file_names(document: dict) -> None:
    document["videos"][0]["file_names"].pop()


def _bbox_off_by_one(document: dict) -> None:
    document["annotations"][0]["bboxes"][3][0] += 1


def _bbox_off_a_little(document: dict) -> None:
    document["annotations"][0]["bboxes"][3][2] += 1e-5


def _missing_key(document: dict) -> None:
    del document["annotations"][1]["areas"]


FAULTS = {
    "wrong list length": (_short_list, "annotations[1].segmentations", "has 4 entries but video 3 has 5 frames"),
    "file names not of the length": (_short_file_names, "videos[0]", "“file_names” has 4 entries"),
    "wrong RLE size": (_wrong_size, "annotations[0].segmentations[1]", "[32, 24] is not video 3's"),
    "bbox off by one": (_bbox_off_by_one, "annotations[0].bboxes[3]", "the frame's mask has the box"),
    "bbox off by 1e-5": (_bbox_off_a_little, "annotations[0].bboxes[3]", "the frame's mask has the box"),
    "area off": (_set(("annotations", 1, "areas", 4), 15), "annotations[1].areas[4]", "has 16 pixels"),
    "area of a null frame": (_set(("annotations", 0, "areas", 2), 0), "annotations[0].areas[2]", "must be null"),
    "bbox of a null frame": (_set(("annotations", 0, "bboxes", 2), [0, 0, 0, 0]), "annotations[0].bboxes[2]", "null"),
    "unknown video id": (_set(("annotations", 1, "video_id"), 99), "annotations[1]", "“video_id” 99 is not"),
    "unknown category id": (_set(("annotations", 1, "category_id"), 99), "annotations[1]", "“category_id” 99"),
    "duplicate track id": (_duplicate_track, "annotations[1]", "duplicate id 7 (also annotations[0])"),
    "duplicate video id": (_duplicate_video, "videos[1]", "duplicate id 3"),
    "undecodable counts": (_undecodable, "annotations[0].segmentations[1]", "end in the middle of a number"),
    "counts of too few pixels": (_too_few_runs, "annotations[0].segmentations[1]", "cover 744 pixels"),
    "track of another length": (_set(("annotations", 0, "length"), 6), "annotations[0]", "“length” is 6"),
    "missing areas": (_missing_key, "annotations[1]", "missing “areas”"),
    "iscrowd": (_set(("annotations", 0, "iscrowd"), 2), "annotations[0]", "“iscrowd” must be 0 or 1"),
    "polygon": (
        _set(("annotations", 0, "segmentations", 0), [[0, 0, 4, 0, 4, 4]]),
        "annotations[0].segmentations[0]",
        "polygons are not read",
    ),
    "no videos": (lambda document: document.pop("videos"), "videos", "missing"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_it_finds_each_injected_fault_at_its_path(fault: str) -> None:
    change, path, message = FAULTS[fault]
    document = json.loads(as_bytes(sample_document()))
    change(document)

    problems = check_youtube_vis(document)

    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: ")
    assert message in problems[0]


def test_it_finds_every_problem_not_only_the_first_few() -> None:
    document = sample_document()
    for track in range(2):
        document["annotations"][track]["bboxes"] = [[1, 1, 1, 1]] * LENGTH
    document["annotations"].extend(
        {**copy.deepcopy(document["annotations"][1]), "id": 100 + n} for n in range(2 * MAX_PROBLEMS)
    )

    assert len(check_youtube_vis(document)) == 2 * LENGTH + 2 * MAX_PROBLEMS * LENGTH


def test_it_accepts_uncompressed_rle_as_loaders_do() -> None:
    document = sample_document()
    document["annotations"][0]["segmentations"][3] = uncompressed(ring_mask())

    assert check_youtube_vis(document) == []
    read = read_youtube_vis(as_bytes(document))
    assert read.tracks[0].frames[3] == mask_encode(ring_mask())


def test_it_refuses_what_is_not_a_file_of_lists() -> None:
    assert check_youtube_vis([]) == [
        "the file: must be a JSON object with the lists “videos”, “annotations” and “categories”"
    ]


# --- reading ----------------------------------------------------------------------------------------


def test_it_reads_back_the_videos_categories_and_masks_it_wrote() -> None:
    read = read_youtube_vis(as_bytes(sample_document()))

    assert read.videos == {3: sample_video()}
    assert read.categories == {1: VisCategory(1, "cat", "animal", {"color": "#ff0000"}), 2: VisCategory(2, "ball")}
    masks = sample_masks()
    assert [track.id for track in read.tracks] == [7, 9]
    for track in read.tracks:
        expected = {frame: mask for frame, mask in masks[track.id].items() if mask.any()}
        assert sorted(track.frames) == sorted(expected)
        for frame, rle in track.frames.items():
            assert np.array_equal(mask_decode(rle), expected[frame])
    assert read.tracks[0].attributes == {"quality": "good"}
    assert (read.tracks[1].video_id, read.tracks[1].category_id) == (3, 2)


def test_it_reads_a_file_without_boxes_and_areas() -> None:
    document = sample_document()
    for entry in document["annotations"]:
        for key in ("bboxes", "areas", "iscrowd", "width", "height", "length", "attributes"):
            del entry[key]

    read = read_youtube_vis(as_bytes(document))

    assert sorted(read.tracks[1].frames) == [0, 1, 3, 4]


def refusal(data: bytes) -> ImportRefused:
    with pytest.raises(ImportRefused) as caught:
        read_youtube_vis(data, file="vis.json")
    return caught.value


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'{"videos": [', "not JSON: Expecting value at line 1, column 13"),
        (b'{"videos": "\xc3\x28"}', "not JSON: the file is not UTF-8 text"),
        (b'{"videos": NaN}', "not JSON: NaN is not a JSON number"),
        (b"[1, 2]", "the file: must be a JSON object"),
    ],
)
def test_it_refuses_a_file_that_is_not_youtube_vis_json(data: bytes, problem: str) -> None:
    refused = refusal(data)

    assert refused.problems[0].startswith(problem)
    assert "“vis.json” was refused and nothing was imported" in refused.message


@pytest.mark.parametrize("fault", ["wrong list length", "wrong RLE size", "unknown video id", "undecodable counts"])
def test_it_refuses_a_bad_file_whole(fault: str) -> None:
    change, path, message = FAULTS[fault]
    document = sample_document()
    change(document)

    refused = refusal(as_bytes(document))

    assert refused.total == 1
    assert path in refused.problems[0] and message in refused.problems[0]


def test_it_does_not_hold_an_import_to_boxes_and_areas() -> None:
    document = sample_document()
    _bbox_off_by_one(document)

    assert read_youtube_vis(as_bytes(document)).tracks[0].frames[3] == mask_encode(ring_mask())


def test_it_names_the_first_problems_and_counts_the_rest() -> None:
    document = sample_document()
    document["annotations"].extend(
        {**copy.deepcopy(document["annotations"][1]), "id": 100 + n, "video_id": 99} for n in range(MAX_PROBLEMS + 5)
    )

    refused = refusal(as_bytes(document))

    assert refused.total == MAX_PROBLEMS + 5
    assert len(refused.problems) == MAX_PROBLEMS
    assert refused.problems[0] == "annotations[2]: “video_id” 99 is not the id of a video of the file"


def test_it_refuses_a_video_larger_than_the_pixel_limit(settings: Any) -> None:
    settings.MAX_IMAGE_PIXELS = H * W - 1

    refused = refusal(as_bytes(sample_document()))

    # The video's tracks name a video that is refused: only the video's own problem is told.
    assert refused.problems == [f"videos[0]: absurd size {W}×{H}: more than the limit of {H * W - 1} pixels"]


def test_it_refuses_a_file_over_the_size_limit(settings: Any) -> None:
    settings.DATASET_IMPORT_MAX_JSON_BYTES = 1024

    refused = refusal(as_bytes(sample_document()))

    assert refused.problems[0].startswith("the file is ")
    assert refused.problems[0].endswith("the limit for a dataset file is 1024 bytes")


# --- COCO-video -------------------------------------------------------------------------------------


def sample_coco_video() -> dict[str, Any]:
    second = VisVideo(id=8, file_names=["b/0.jpg", "b/1.jpg"], width=W, height=H)
    tracks = [*sample_tracks(), VisTrack(11, 8, 2, {1: mask_encode(box_mask(1, 1, 3, 3))})]
    return coco_video_document([sample_video(), second], sample_categories(), tracks)


def test_it_writes_coco_video_that_pycocotools_loads_and_decodes(tmp_path: Path) -> None:
    path = tmp_path / "coco_video.json"
    path.write_text(json.dumps(sample_coco_video()))

    loaded = COCO(str(path))

    masks = sample_masks()
    masks[11] = {1: box_mask(1, 1, 3, 3)}
    expected = {(track, frame): mask for track, frames in masks.items() for frame, mask in frames.items() if mask.any()}
    seen = {}
    for annotation in loaded.loadAnns(loaded.getAnnIds()):
        image = loaded.imgs[annotation["image_id"]]
        key = (annotation["instance_id"], image["frame_id"])
        assert image["video_id"] == annotation["video_id"]
        seen[key] = loaded.annToMask(annotation).astype(bool)
        assert annotation["area"] == int(seen[key].sum())
    assert sorted(seen) == sorted(expected)
    for key, mask in expected.items():
        assert np.array_equal(seen[key], mask), key


def test_it_gives_coco_video_one_image_per_frame() -> None:
    document = sample_coco_video()

    assert [video["name"] for video in document["videos"]] == ["clip", "b"]
    assert [
        (image["id"], image["video_id"], image["frame_id"], image["file_name"]) for image in document["images"]
    ] == [
        *((1 + frame, 3, frame, f"clip/{frame:05d}.jpg") for frame in range(LENGTH)),
        (6, 8, 0, "b/0.jpg"),
        (7, 8, 1, "b/1.jpg"),
    ]
    assert [annotation["id"] for annotation in document["annotations"]] == list(range(1, 9))
    last = document["annotations"][-1]
    assert (last["image_id"], last["instance_id"], last["category_id"], last["bbox"]) == (7, 11, 2, [1, 1, 3, 3])


def test_it_names_a_video_by_its_id_when_its_frames_share_no_folder() -> None:
    video = VisVideo(id=5, file_names=["0.jpg", "1.jpg"], width=W, height=H)

    assert coco_video_document([video], [], [])["videos"][0]["name"] == "5"


def test_it_streams_the_same_coco_video_file_it_builds_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "coco_video.json"
    with CocoVideoWriter(path, sample_categories()) as writer:
        writer.video(sample_video())
        writer.video(VisVideo(id=8, file_names=["b/0.jpg", "b/1.jpg"], width=W, height=H))
        for track in [*sample_tracks(), VisTrack(11, 8, 2, {1: mask_encode(box_mask(1, 1, 3, 3))})]:
            writer.track(track)

    assert json.loads(path.read_text()) == sample_coco_video()


def test_it_writes_and_checks_a_track_longer_than_255_frames() -> None:
    # pycocotools' area() cannot take more than 255 masks at once under NumPy 2.
    length = 300
    video = VisVideo(id=1, file_names=[f"long/{frame}.jpg" for frame in range(length)], width=W, height=H)
    masks = {frame: box_mask(frame % 20, frame % 28, 4, 1 + frame % 4) for frame in range(length)}
    track = VisTrack(1, 1, 2, {frame: mask_encode(mask) for frame, mask in masks.items()})

    document = youtube_vis_document([video], sample_categories(), [track])

    assert check_youtube_vis(document) == []
    assert document["annotations"][0]["areas"] == [int(masks[frame].sum()) for frame in range(length)]
    assert len(coco_video_document([video], sample_categories(), [track])["annotations"]) == length
