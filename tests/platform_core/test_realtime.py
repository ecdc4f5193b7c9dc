"""The realtime base: group names, publishing after commit (never on rollback), best effort when
the layer refuses, over the in-memory layer and, when REDIS_URL names a server, over Redis."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from asgiref.sync import SyncToAsync, async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction

from platform_core import realtime
from platform_core.realtime import media_group, org_group, project_group, publish, publish_after_commit
from tests.platform_core.test_websockets import layer  # noqa: F401 - the memory / redis fixture

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("layer")]


async def _listen(group: str) -> tuple[Any, str]:
    channel_layer = get_channel_layer()
    channel = await channel_layer.new_channel()
    await channel_layer.group_add(group, channel)
    return channel_layer, channel


async def _received(channel_layer: Any, channel: str, timeout: float = 0.5) -> list[dict]:
    messages = []
    while True:
        try:
            messages.append(await asyncio.wait_for(channel_layer.receive(channel), timeout))
        except TimeoutError:
            return messages


async def test_it_names_one_group_per_organisation_project_and_media_item() -> None:
    names = [org_group(7), project_group(7), media_group(7)]
    assert names == ["org.7", "project.7", "media.7"]
    channel_layer = get_channel_layer()
    for name in names:  # the layer accepts them
        assert channel_layer.require_valid_group_name(name)


async def test_it_publishes_only_after_the_transaction_commits() -> None:
    channel_layer, channel = await _listen(org_group(1))

    def commit() -> list[dict]:
        with transaction.atomic():
            publish_after_commit(org_group(1), {"type": "thing.changed", "n": 1})
            return async_to_sync(_received)(channel_layer, channel, 0.2)

    assert await database_sync_to_async(commit)() == []  # nothing went out inside the transaction
    assert [m["n"] for m in await _received(channel_layer, channel)] == [1]


async def test_it_publishes_nothing_when_the_transaction_rolls_back() -> None:
    channel_layer, channel = await _listen(org_group(2))

    def roll_back() -> None:
        with pytest.raises(RuntimeError), transaction.atomic():
            publish_after_commit(org_group(2), {"type": "thing.changed", "n": 1})
            raise RuntimeError("the change fails")
        publish_after_commit(org_group(2), {"type": "thing.changed", "n": 2})  # outside: sent at once

    await database_sync_to_async(roll_back)()
    assert [m["n"] for m in await _received(channel_layer, channel)] == [2]


async def test_it_publishes_nothing_before_an_outer_transaction_commits() -> None:
    channel_layer, channel = await _listen(org_group(3))

    def nested() -> list[dict]:
        with transaction.atomic():
            with transaction.atomic():
                publish_after_commit(org_group(3), {"type": "thing.changed", "n": 3})
            # The inner block is done but the outer one has not committed.
            return async_to_sync(_received)(channel_layer, channel, 0.2)

    assert await database_sync_to_async(nested)() == []
    assert [m["n"] for m in await _received(channel_layer, channel)] == [3]


async def test_it_does_not_fail_the_publisher_when_the_layer_refuses() -> None:
    # A group name the layer refuses raises inside group_send; the publisher carries on.
    await database_sync_to_async(publish)("not a valid group!", {"type": "thing.changed"})


async def test_it_gives_up_on_an_event_loop_that_never_runs_the_send(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Sync work done for async code publishes through that code's loop. A loop that stops running
    callbacks (a server shutting down) must not hold the publisher, and with it the process, forever."""
    monkeypatch.setattr(realtime, "PUBLISH_WAIT_SECONDS", 0.3)
    loop = asyncio.new_event_loop()
    busy, release = threading.Event(), threading.Event()
    loop.call_soon(lambda: (busy.set(), release.wait(30)))  # running, but never gets to the send
    serving = threading.Thread(target=loop.run_forever)
    serving.start()
    busy.wait(5)

    def publish_for_that_loop() -> None:
        SyncToAsync.threadlocal.main_event_loop = loop
        publish("media.1", {"type": "annotation.changed"})

    publisher = threading.Thread(target=publish_for_that_loop)
    try:
        publisher.start()
        publisher.join(10)
        assert not publisher.is_alive()
        assert "Could not publish annotation.changed to media.1" in caplog.text
    finally:
        release.set()
        loop.call_soon_threadsafe(loop.stop)
        serving.join(10)
        loop.close()
