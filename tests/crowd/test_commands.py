"""``manage.py crowd_urls``: one ``<kind> <url>`` line per open batch, absolute from SITE_URL."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

from tests.crowd.helpers import crowd_setup


def _run(*args: str) -> list[str]:
    out = io.StringIO()
    call_command("crowd_urls", *args, stdout=out)
    return out.getvalue().splitlines()


@override_settings(SITE_URL="https://crowd.example.org")
def test_it_prints_the_entry_url_of_every_open_batch(world: Any) -> None:
    link = crowd_setup(world.demo, with_test=False).batch
    mturk = crowd_setup(world.other, provider="mturk", with_test=False, regular=1, hidden=0, qualification=0).batch
    lines = _run()
    assert lines == [
        f"link https://crowd.example.org/crowd/link/{link.public_id}/"
        "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}",
        f"mturk https://crowd.example.org/crowd/mturk/{mturk.public_id}/",
    ]
    mturk.state = "closed"
    mturk.save(update_fields=["state"])
    assert [line.split()[0] for line in _run()] == ["link"]
    assert [line.split()[0] for line in _run("--batch", str(mturk.pk))] == ["mturk"]


def test_it_prints_urls_that_open_the_batch(world: Any) -> None:
    batch = crowd_setup(world.demo, with_test=False).batch
    (line,) = _run("--batch", str(batch.pk))
    url = line.split()[1].split("?")[0].removeprefix(settings.SITE_URL)
    response = Client().get(url, {"PROLIFIC_PID": "p", "STUDY_ID": "s", "SESSION_ID": "x"})
    assert response.status_code == 302 and response["Location"].startswith("/crowd/task/")


def test_it_refuses_an_unknown_batch(db: None) -> None:
    with pytest.raises(CommandError, match="No crowd batch"):
        _run("--batch", "999")
