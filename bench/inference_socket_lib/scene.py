"""The scene bench/inference_socket.py measures: a throw-away data folder and SQLite database, a
random-weight checkpoint, an organisation whose annotators each have a task with one copy of a
1024 × 768 photograph (made in a process of its own, with Django:
``python bench/inference_socket_lib/scene.py <data dir> <items>``), their sessions, and the
environment daphne serves it with (inline inference, the in-memory channel layer)."""

from __future__ import annotations

import http.cookiejar
import io
import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ORG = "bench-lab"
PASSWORD = "bench-pw-1234"  # noqa: S105 - a throw-away database
WIDTH, HEIGHT = 1024, 768


def photograph() -> Any:
    """The image bench/inference_predictor.py segments: scikit-image's coffee at 1024 × 768 (RGB)."""
    import cv2
    import skimage.data

    return cv2.resize(skimage.data.coffee(), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


def server_env(data_dir: Path, *, checkpoint_dir: Path, device: str) -> dict[str, str]:
    from studio_canvas_lib.scene import server_env as plain_env

    env = plain_env(data_dir)  # SQLite and the in-memory channel layer in data_dir, DEBUG off
    env.update(
        INFERENCE_MODE="inline",
        SAM2_CHECKPOINT_DIR=str(checkpoint_dir),
        INFERENCE_DEVICE=device,
        # A prompt waiting behind 20 others on a busy CPU can take longer than the default 30 s;
        # a timeout would lose the figure the bench is for.
        INFERENCE_TIMEOUT_SECONDS="900",
    )
    return env


def _run(command: list[str], env: dict[str, str]) -> str:
    """Run one of the project's own commands; its output, or an error that shows why it failed."""
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def write_checkpoint(*, model: str, directory: Path, env: dict[str, str]) -> None:
    _run([sys.executable, "manage.py", "sam2_random_checkpoint", "--model", model, "--dir", str(directory)], env)


def prepare(data_dir: Path, env: dict[str, str], *, items: int) -> dict[str, Any]:
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        _run([sys.executable, "manage.py", *command], env)
    out = _run([sys.executable, __file__, str(data_dir), str(items)], env)
    return json.loads(out.strip().splitlines()[-1])


def login(base: str, username: str) -> str:
    """Sign in through the login form, as a browser does; the session cookie's value."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    url = base + "/accounts/login/"
    with opener.open(url, timeout=60) as response:
        page = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, "no CSRF token on the login page"
    form = urllib.parse.urlencode({"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token[1]})
    request = urllib.request.Request(url, data=form.encode(), headers={"Origin": base, "Referer": url})  # noqa: S310 - loopback
    with opener.open(request, timeout=60) as response:
        response.read()
    sessions = [cookie.value for cookie in jar if cookie.name == "sessionid"]
    if not sessions:
        raise RuntimeError(f"signing in as {username} gave no session")
    return sessions[0]


# --- the database (in a process of its own, with Django) ----------------------------------------


def seed(items: int) -> dict[str, Any]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform_core.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()

    from django.contrib.auth import get_user_model
    from django.test import Client
    from PIL import Image

    from annotation.media_services import media_create_image
    from annotation.projects.services import label_create, project_create
    from annotation.tasks.services import task_assign, tasks_split
    from platform_core.models import Membership, Organization, Role
    from platform_core.tenancy import resolve_tenant

    org = Organization.objects.create(name="Bench Lab", slug=ORG)
    users = get_user_model().objects
    manager = users.create_user("bench-manager")
    Membership.objects.create(user=manager, organization=org, role=Role.MANAGER)
    project = project_create(organization=org, name="Tabletop", created_by=manager)
    label = label_create(project=project, name="object", color="#e6194b")
    buffer = io.BytesIO()
    Image.fromarray(photograph()).save(buffer, format="JPEG", quality=90)
    made = [
        media_create_image(project=project, name=f"coffee-{i:02}.jpg", data=buffer.getvalue(), uploaded_by=manager)
        for i in range(items)
    ]
    tenant = resolve_tenant(manager, ORG)
    tasks = tasks_split(tenant=tenant, project=project, size=1, actor=manager)
    out = []
    for index, (item, task) in enumerate(zip(made, tasks, strict=True)):
        # The first annotator signs in through the login form; the others get sessions here
        # (hashing a password per account would cost seconds of a busy CPU for nothing measured).
        username = f"bench-annotator-{index:02}"
        annotator = users.create_user(username, password=PASSWORD if index == 0 else None)
        Membership.objects.create(user=annotator, organization=org, role=Role.ANNOTATOR)
        task_assign(tenant=tenant, task=task, assignee=annotator, actor=manager)
        item.refresh_from_db()
        assert item.task_id == task.pk and (item.width, item.height) == (WIDTH, HEIGHT)
        client = Client()
        client.force_login(annotator)
        out.append(
            {
                "id": item.pk,
                "path": f"/ws/o/{ORG}/studio/{item.pk}/",
                "file": item.file.path,
                "username": username,
                "session": client.cookies["sessionid"].value,
            }
        )
    return {"label_id": label.pk, "items": out, "image_bytes": made[0].size_bytes}


if __name__ == "__main__":
    print(json.dumps(seed(int(sys.argv[2]))))
