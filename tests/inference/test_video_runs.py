"""Propagation runs and video prompts, in process: each frame saved as it comes with its track and
run, the job's progress and last done frame kept; SAM 2.1 tiny (random weights) gives through the
platform exactly the masks of sam2's own video predictor on the same frames and clicks; a run
stopped midway keeps its frames and a resumed run finishes the video; a video prompt on a later frame
corrects a track and becomes a seed; bad requests and other organisations' ids are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sam2.build_sam import build_sam2_video_predictor

from annotation.annotations.services import annotation_create
from annotation.masks import box_to_rle, mask_decode
from annotation.models import Annotation, MediaItem, Project
from annotation.video_services import media_create_video, video_frames_local_dir
from inference import registry
from inference.loading import ModelLoader
from inference.prompts import InferenceError, PromptError
from inference.video.prompting import video_prompt_execute, video_prompt_request
from inference.video.runs import RUN_KIND, VideoStates, run_execute, run_request, run_start
from inference.video.trackers import FLOW_KEY, FlowTracker, VideoPredictorLoader, get_tracker
from platform_core.models import Job
from platform_core.tenancy import resolve_tenant
from tests.annotation.test_video_files import make_clip

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")

FRAMES = 5
SEED_BOX = [4, 4, 30, 20]


@pytest.fixture
def video(world: Any) -> MediaItem:
    project = world.demo.project
    Project.objects.filter(pk=project.pk).update(media_type=Project.MediaType.BOTH)
    project.refresh_from_db()
    return media_create_video(
        project=project, name="clip.mp4", data=make_clip(frames=FRAMES), uploaded_by=world.manager
    )


@pytest.fixture
def tenant(world: Any) -> Any:
    return resolve_tenant(world.manager, world.demo.org.slug)


def seed(tenant: Any, video: MediaItem, user: Any, *, frame: int = 0, track: int = 1, **extra: Any) -> Annotation:
    rle = box_to_rle(SEED_BOX, height=video.height, width=video.width)
    label = video.project.labels.first()
    return annotation_create(
        tenant=tenant, media=video, label=label, rle=rle, author=user, frame=frame, track=track, **extra
    )


def states(checkpoints: Path | None = None) -> VideoStates:
    """A process's video states of its own, SAM 2 built from ``checkpoints`` on the CPU."""
    loader = VideoPredictorLoader(ModelLoader(checkpoint_dir=checkpoints, device="cpu", publish=False))
    return VideoStates(1 << 34, tracker_for=lambda model: get_tracker(model, predictors=loader))


def execute(job: Job, world: Any, video_states: VideoStates) -> dict[str, Any]:
    return run_execute(run_request(job, org_slug=world.demo.org.slug, origin=""), states=video_states)


def run_masks(video: MediaItem, job: Job) -> dict[int, np.ndarray]:
    found = Annotation.objects.filter(media=video, source_detail__run=job.pk).order_by("frame")
    return {a.frame: mask_decode(a.rle) for a in found}


# --- runs with the optical-flow tracker ------------------------------------------------------------------
def test_a_forward_run_saves_each_frame_of_the_track(world: Any, video: MediaItem, tenant: Any) -> None:
    person = seed(tenant, video, world.manager)
    job = run_start(tenant=tenant, media=video, model=FLOW_KEY, start=0, direction="forward", actor=world.manager)
    assert (job.kind, job.state, job.progress_total) == (RUN_KIND, "queued", FRAMES)

    frame = execute(job, world, states())
    job.refresh_from_db()
    assert frame == {
        "type": "video.run",
        "job": job.pk,
        "state": "succeeded",
        "done": FRAMES,
        "total": FRAMES,
        "last_done": FRAMES - 1,
        "message": "",
    }
    assert job.report["done"] == list(range(FRAMES))

    # The person's seed is untouched; frames 1… are the run's, in the seed's track and label.
    person.refresh_from_db()
    assert person.version == 1 and "run" not in person.source_detail
    made = list(Annotation.objects.filter(media=video, source_detail__run=job.pk).order_by("frame"))
    assert [(a.frame, a.track, a.label_id, a.source) for a in made] == [
        (f, 1, person.label_id, "model") for f in range(1, FRAMES)
    ]
    # Exactly what the tracker gives for this seed on these frames.
    tracker = FlowTracker()
    state = tracker.start(video_frames_local_dir(video))
    tracker.add_mask(state, frame=0, obj_id=1, mask=mask_decode(person.rle))
    expected = {r.frame: r.masks[1] for r in tracker.propagate(state, start=0)}
    ours = run_masks(video, job)
    assert sorted(ours) == list(range(1, FRAMES))
    assert all(np.array_equal(ours[f], expected[f]) for f in ours)


def test_a_stopped_run_keeps_its_frames_and_a_resumed_one_finishes(world: Any, video: MediaItem, tenant: Any) -> None:
    seed(tenant, video, world.manager)
    job = run_start(tenant=tenant, media=video, model=FLOW_KEY, start=0, direction="forward", actor=world.manager)

    class StopAfterTwo(FlowTracker):
        """The optical-flow tracker; the person presses Stop while frame 2 is computed."""

        def propagate(self, state: Any, **kwargs: Any) -> Any:
            for result in super().propagate(state, **kwargs):
                if result.frame == 2:
                    Job.objects.filter(pk=job.pk).update(state=Job.State.CANCELLED)
                yield result

    stopping = VideoStates(1 << 30, tracker_for=lambda model: StopAfterTwo())
    frame = execute(job, world, stopping)
    assert (frame["state"], frame["last_done"], frame["done"]) == ("cancelled", 2, 3)
    assert sorted(run_masks(video, job)) == [1, 2]

    resumed = run_start(tenant=tenant, media=video, model=None, start=None, resume=job.pk, actor=world.manager)
    assert (resumed.params["start"], resumed.params["resume_of"], resumed.progress_total) == (2, job.pk, FRAMES - 2)
    frame = execute(resumed, world, states())
    assert (frame["state"], frame["last_done"]) == ("succeeded", FRAMES - 1)
    # Frames 1 and 2 from the first run (2 rewritten from its own mask), 3 and 4 from the second.
    assert sorted(run_masks(video, job)) == [1]
    assert sorted(run_masks(video, resumed)) == [2, 3, 4]
    assert Annotation.objects.filter(media=video, track=1).count() == FRAMES


def test_a_backward_and_a_both_ways_run_cover_their_frames(world: Any, video: MediaItem, tenant: Any) -> None:
    seed(tenant, video, world.manager, frame=2)
    both = run_start(tenant=tenant, media=video, model=FLOW_KEY, start=2, direction="both", actor=world.manager)
    assert both.progress_total == FRAMES
    assert execute(both, world, states())["done"] == FRAMES
    assert sorted(run_masks(video, both)) == [0, 1, 3, 4]
    back = run_start(tenant=tenant, media=video, model=FLOW_KEY, start=1, direction="backward", actor=world.manager)
    assert back.progress_total == 2
    execute(back, world, states())
    # Frame 1 and 0 now come from the second run (replaced, not doubled).
    assert sorted(run_masks(video, back)) == [0, 1]
    assert Annotation.objects.filter(media=video, frame=0).count() == 1


def test_re_segmenting_chosen_frames_writes_only_those(world: Any, video: MediaItem, tenant: Any) -> None:
    seed(tenant, video, world.manager)
    job = run_start(tenant=tenant, media=video, model=FLOW_KEY, start=0, frames=[3, 1], actor=world.manager)
    assert (job.params["frames"], job.progress_total) == ([1, 3], 2)
    execute(job, world, states())
    assert sorted(run_masks(video, job)) == [1, 3]


def test_run_start_refuses_what_cannot_run(world: Any, video: MediaItem, tenant: Any) -> None:
    def start(**kwargs: Any) -> Any:
        params = {"model": FLOW_KEY, "start": 0, "direction": "forward", **kwargs}
        return run_start(tenant=tenant, media=video, actor=world.manager, **params)

    for kwargs, code in [
        ({"model": "huge"}, "unknown_model"),
        ({"start": FRAMES}, "bad_frame"),
        ({"start": -1}, "bad_frame"),
        ({"start": True}, "bad_frame"),
        ({"direction": "sideways"}, "bad_direction"),
        ({"frames": []}, "bad_frames"),
        ({"frames": [FRAMES]}, "bad_frame"),
        ({"frames": "1,2"}, "bad_frames"),
        ({"resume": 999_999}, "bad_resume"),
    ]:
        with pytest.raises(PromptError) as refused:
            start(**kwargs)
        assert refused.value.code == code, kwargs
    with pytest.raises(PromptError, match="whose frames are ready"):
        run_start(tenant=tenant, media=world.demo.media, model=FLOW_KEY, start=0, actor=world.manager)
    # Another organisation's run cannot be resumed here.
    other = resolve_tenant(world.outsider, world.other.org.slug)
    foreign = Job.objects.create(organization=other.org, kind=RUN_KIND, params={"media_id": video.pk})
    with pytest.raises(PromptError, match="no such run"):
        start(resume=foreign.pk)


def test_a_run_without_a_seed_fails_with_the_reason(world: Any, video: MediaItem, tenant: Any) -> None:
    job = run_start(tenant=tenant, media=video, model=FLOW_KEY, start=0, actor=world.manager)
    frame = execute(job, world, states())
    job.refresh_from_db()
    assert (frame["state"], job.state) == ("failed", "failed")
    assert "nothing to propagate" in frame["message"] == job.message


# --- SAM 2 -----------------------------------------------------------------------------------------------
def test_sam2_prompts_and_runs_give_the_raw_video_predictor_masks(
    world: Any, video: MediaItem, tenant: Any, sam2_checkpoint_dir: Path
) -> None:
    video_states = states(sam2_checkpoint_dir)
    message = {
        "type": "video_prompt",
        "model": "tiny",
        "frame": 0,
        "label_id": video.project.labels.first().pk,
        "points": [[20, 20, 1]],
        "request_id": "r1",
    }
    request = video_prompt_request(message, media=video, user_id=world.manager.pk, org_slug="demo-lab", origin="")
    reply = video_prompt_execute(request, states=video_states)
    assert reply["type"] == "mask", reply
    assert (reply["frame"], reply["track"]) == (0, 1)
    person = Annotation.objects.get(pk=reply["object_id"])
    assert person.source_detail == {"model": "tiny", "prompts": [{"points": [[20, 20, 1]], "box": None}]}

    job = run_start(tenant=tenant, media=video, model="tiny", start=0, direction="forward", actor=world.manager)
    assert execute(job, world, video_states)["state"] == "succeeded"

    spec = registry.MODELS["tiny"]
    raw = build_sam2_video_predictor(spec.config, str(sam2_checkpoint_dir / spec.checkpoint), device="cpu")
    raw.fill_hole_area = 0
    raw_state = raw.init_state(str(video_frames_local_dir(video)))
    _, _, first = raw.add_new_points_or_box(
        raw_state, frame_idx=0, obj_id=1, points=np.array([[20, 20]], np.float32), labels=np.array([1], np.int32)
    )
    assert np.array_equal(mask_decode(person.rle), (first[0, 0] > 0).numpy())
    expected = {frame: (logits[0, 0] > 0).numpy() for frame, _, logits in raw.propagate_in_video(raw_state, 0)}
    ours = run_masks(video, job)
    for frame in range(1, FRAMES):
        if expected[frame].any():
            assert np.array_equal(ours[frame], expected[frame]), frame
        else:  # an object SAM 2 loses on a frame has no annotation there
            assert frame not in ours


def test_a_video_prompt_on_a_later_frame_corrects_the_track(world: Any, video: MediaItem, tenant: Any) -> None:
    seed(tenant, video, world.manager)
    video_states = states()
    job = run_start(tenant=tenant, media=video, model=FLOW_KEY, start=0, actor=world.manager)
    execute(job, world, video_states)
    propagated = Annotation.objects.get(media=video, frame=3, track=1)

    message = {
        "model": FLOW_KEY,
        "frame": 3,
        "object_id": propagated.pk,
        "version": propagated.version,
        "box": [0, 0, 22, 20],
        "points": None,
    }
    request = video_prompt_request(message, media=video, user_id=world.manager.pk, org_slug="demo-lab", origin="")
    reply = video_prompt_execute(request, states=video_states)
    assert reply["type"] == "mask", reply
    assert (reply["object_id"], reply["frame"], reply["track"]) == (propagated.pk, 3, 1)
    propagated.refresh_from_db()
    assert "run" not in propagated.source_detail and propagated.source_detail["prompts"]  # now a seed
    again = run_start(tenant=tenant, media=video, model=FLOW_KEY, start=3, actor=world.manager)
    execute(again, world, video_states)
    # Frame 4 follows the correction; frame 3 is the person's.
    assert sorted(run_masks(video, again)) == [4]
    assert Annotation.objects.get(pk=propagated.pk).version == propagated.version


def test_video_prompts_refuse_bad_messages(world: Any, video: MediaItem) -> None:
    def request(**changes: Any) -> Any:
        message = {"model": FLOW_KEY, "frame": 0, "label_id": 1, "points": [[5, 5, 1]], **changes}
        return video_prompt_request(message, media=video, user_id=world.manager.pk, org_slug="demo-lab", origin="")

    for changes, code in [
        ({"model": "huge"}, "unknown_model"),
        ({"frame": FRAMES}, "bad_frame"),
        ({"frame": "0"}, "bad_frame"),
        ({"label_id": None}, "bad_prompt"),
        ({"points": [[500, 5, 1]]}, "point_outside_image"),
        ({"points": None}, "no_prompt"),
    ]:
        with pytest.raises(InferenceError) as refused:
            request(**changes)
        assert refused.value.code == code, changes
    with pytest.raises(PromptError, match="whose frames are ready"):
        video_prompt_request(
            {"model": FLOW_KEY, "frame": 0, "label_id": 1, "points": [[5, 5, 1]]},
            media=world.demo.media,
            user_id=world.manager.pk,
            org_slug="demo-lab",
            origin="",
        )
    # Another organisation's label is refused where the prompt runs (a label is a value here, not
    # the object the socket is about), as the image prompts refuse it.
    reply = video_prompt_execute(request(label_id=world.other.label.pk), states=states())
    assert (reply["type"], reply["code"]) == ("error", "invalid")
    assert not Annotation.objects.filter(media=video).exists()


def test_a_run_frame_a_person_redraws_becomes_their_seed(world: Any, video: MediaItem, tenant: Any) -> None:
    from annotation.annotations.services import annotation_update

    seed(tenant, video, world.manager)
    first = run_start(tenant=tenant, media=video, model=FLOW_KEY, start=0, actor=world.manager)
    execute(first, world, states())
    written = Annotation.objects.get(media=video, frame=2, track=1)
    fixed_rle = box_to_rle([0, 0, 12, 12], height=video.height, width=video.width)
    fixed = annotation_update(
        tenant=tenant, annotation=written, expected_version=written.version, author=world.annotator, rle=fixed_rle
    )
    assert "run" not in fixed.source_detail and fixed.source_detail["model"] == FLOW_KEY
    # Answers alone do not make it theirs: only a new mask does.
    other = Annotation.objects.get(media=video, frame=3, track=1)
    kept = annotation_update(
        tenant=tenant, annotation=other, expected_version=other.version, author=world.annotator, answers={}
    )
    assert kept.source_detail["run"] == first.pk

    again = run_start(tenant=tenant, media=video, model=FLOW_KEY, start=2, actor=world.manager)
    execute(again, world, states())
    assert Annotation.objects.get(pk=fixed.pk).rle == fixed.rle  # not overwritten
    assert sorted(run_masks(video, again)) == [3, 4]


def test_a_run_may_start_from_an_earlier_runs_output(world: Any, video: MediaItem, tenant: Any) -> None:
    person = seed(tenant, video, world.manager)
    first = run_start(tenant=tenant, media=video, model=FLOW_KEY, start=0, actor=world.manager)
    execute(first, world, states())
    # The person's seed goes; what the run made on frame 2 is what a new run starts from.
    from annotation.annotations.services import annotation_delete

    annotation_delete(tenant=tenant, annotation=person, expected_version=person.version, actor=world.manager)
    start_mask = mask_decode(Annotation.objects.get(media=video, frame=2, track=1).rle)
    again = run_start(tenant=tenant, media=video, model=FLOW_KEY, start=2, from_output=True, actor=world.manager)
    assert again.params["resume_last_done"] == 2
    assert execute(again, world, states())["state"] == "succeeded"
    tracker = FlowTracker()
    state = tracker.start(video_frames_local_dir(video))
    tracker.add_mask(state, frame=2, obj_id=1, mask=start_mask)
    expected = {r.frame: r.masks[1] for r in tracker.propagate(state, start=2)}
    ours = run_masks(video, again)
    assert sorted(ours) == [2, 3, 4]
    assert all(np.array_equal(ours[f], expected[f]) for f in ours)
    with pytest.raises(PromptError, match="from_output"):
        run_start(tenant=tenant, media=video, model=FLOW_KEY, start=2, from_output="yes", actor=world.manager)
