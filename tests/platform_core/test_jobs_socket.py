"""Job progress pushed over ``/ws/o/<org>/jobs/`` through the real ASGI stack and channel layer:
to members of the job's organisation who may see it, never to another organisation's members."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from platform_core.jobs import job_start
from platform_core.jobs.core import run_job
from platform_core.realtime import org_group
from tests.platform_core import job_kinds  # noqa: F401 - registers the test job kinds
from tests.platform_core.test_websockets import communicator, layer, session_cookie  # noqa: F401

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("layer")]


async def _socket(user: Any, org_slug: str) -> Any:
    cookie = await database_sync_to_async(session_cookie)(user)
    ws = communicator("", cookie=cookie, path=f"/ws/o/{org_slug}/jobs/")
    connected, _ = await ws.connect()
    assert connected
    return ws


async def _events(ws: Any) -> list[dict]:
    events = []
    while not await ws.receive_nothing(timeout=0.3):
        events.append(await ws.receive_json_from())
    return events


def _start_and_run(world: Any, user: Any, n: int = 3) -> int:
    job = job_start(organization=world.demo.org, kind="test_steps", params={"n": n}, created_by=user)
    run_job.call(job.pk)
    return job.pk


async def test_it_pushes_a_jobs_progress_to_members_of_its_organisation(world: Any) -> None:
    manager = await _socket(world.manager, world.demo.org.slug)
    reviewer = await _socket(world.reviewer, world.demo.org.slug)
    outsider = await _socket(world.outsider, world.other.org.slug)

    job_id = await database_sync_to_async(_start_and_run)(world, world.manager, 3)

    events = await _events(manager)
    assert events and all(event["type"] == "job.progress" and event["job"]["id"] == job_id for event in events)
    jobs = [event["job"] for event in events]
    assert [job["state"] for job in jobs][0] == "queued"
    assert "running" in [job["state"] for job in jobs]
    assert jobs[-1] | {"message": None} == {
        "id": job_id,
        "kind": "test_steps",
        "state": "succeeded",
        "display_state": "succeeded",
        "state_label": "Succeeded",
        "done": 3,
        "total": 3,
        "percent": 100,
        "message": None,
        "finished": True,
    }
    percents = [job["percent"] for job in jobs]
    assert percents == sorted(percents)
    assert "created_by_id" not in events[0]  # who started it stays on the server

    assert [event["job"]["state"] for event in await _events(reviewer)] == [job["state"] for job in jobs]
    assert await outsider.receive_nothing(timeout=0.5)
    for ws in (manager, reviewer, outsider):
        await ws.disconnect()


async def test_it_shows_an_annotator_only_the_jobs_they_started(world: Any) -> None:
    annotator = await _socket(world.annotator, world.demo.org.slug)
    await database_sync_to_async(_start_and_run)(world, world.manager, 1)
    assert await annotator.receive_nothing(timeout=0.5)

    own = await database_sync_to_async(_start_and_run)(world, world.annotator, 1)
    events = await _events(annotator)
    assert events and {event["job"]["id"] for event in events} == {own}
    assert events[-1]["job"]["state"] == "succeeded"
    await annotator.disconnect()


async def test_it_pushes_throttled_progress_with_the_last_step(world: Any) -> None:
    manager = await _socket(world.manager, world.demo.org.slug)
    await database_sync_to_async(_start_and_run)(world, world.manager, 200)
    running = [event["job"] for event in await _events(manager) if event["job"]["state"] == "running"]
    # The claim, the first step and the last one; 200 quick steps are not 200 pushes.
    assert 3 <= len(running) <= 6
    assert running[-1]["done"] == 200
    await manager.disconnect()


async def test_it_ignores_other_events_of_the_organisation_group(world: Any) -> None:
    manager = await _socket(world.manager, world.demo.org.slug)
    await get_channel_layer().group_send(org_group(world.demo.org.pk), {"type": "studio.changed", "media": 1})
    job_id = await database_sync_to_async(_start_and_run)(world, world.manager, 1)
    events = await _events(manager)
    assert events and {event["job"]["id"] for event in events} == {job_id}
    await manager.disconnect()


async def test_it_answers_a_ping_and_refuses_other_messages(world: Any) -> None:
    manager = await _socket(world.manager, world.demo.org.slug)
    await manager.send_json_to({"type": "ping", "request_id": "p-1"})
    assert await manager.receive_json_from(timeout=3) == {"type": "pong", "request_id": "p-1"}
    await manager.send_json_to({"type": "cancel", "job": 1})
    reply = await manager.receive_json_from(timeout=3)
    assert (reply["type"], reply["code"]) == ("error", "unknown_type")
    await manager.disconnect()
