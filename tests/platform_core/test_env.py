"""Settings come from the environment and a bad value stops start-up with the variable's name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from platform_core.env import env_bool, env_int, env_list, env_url

ROOT = Path(__file__).resolve().parents[2]


def test_it_parses_booleans() -> None:
    assert env_bool("X", environ={"X": "1"}) is True
    assert env_bool("X", environ={"X": "off"}) is False
    assert env_bool("X", True, environ={}) is True
    with pytest.raises(ImproperlyConfigured, match="X='maybe'"):
        env_bool("X", environ={"X": "maybe"})


def test_it_parses_integers_with_a_minimum() -> None:
    assert env_int("N", 5, environ={"N": " 7 "}) == 7
    assert env_int("N", 5, environ={}) == 5
    with pytest.raises(ImproperlyConfigured, match="N='7x'"):
        env_int("N", 5, environ={"N": "7x"})
    with pytest.raises(ImproperlyConfigured, match="minimum"):
        env_int("N", 5, minimum=10, environ={"N": "3"})


def test_it_parses_lists_and_urls() -> None:
    assert env_list("H", ["a"], environ={"H": "x.org, ,y.org"}) == ["x.org", "y.org"]
    assert env_list("H", ["a"], environ={}) == ["a"]
    assert env_url("U", schemes=("redis",), environ={"U": "redis://h:6379/0"}) == "redis://h:6379/0"
    with pytest.raises(ImproperlyConfigured, match="redis://"):
        env_url("U", schemes=("redis",), environ={"U": "http://h"})


def load_settings(**env: str) -> subprocess.CompletedProcess:
    """Import the real settings module in a fresh interpreter with exactly these variables."""
    code = (
        "import json; from platform_core import settings as s; "
        "print(json.dumps({'db': s.DATABASES['default']['ENGINE'], 'layer': s.CHANNEL_LAYERS['default']['BACKEND'],"
        " 'storage': s.STORAGES['default']['BACKEND'], 'debug': s.DEBUG, 'hosts': s.ALLOWED_HOSTS}))"
    )
    clean = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_it_defaults_to_the_embedded_setup_in_debug() -> None:
    result = load_settings(DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "db": "django.db.backends.sqlite3",
        "layer": "channels.layers.InMemoryChannelLayer",
        "storage": "django.core.files.storage.FileSystemStorage",
        "debug": True,
        "hosts": ["127.0.0.1", "localhost", "[::1]"],
    }


def test_it_switches_to_services_when_configured() -> None:
    result = load_settings(
        SECRET_KEY="k" * 50,
        DATABASE_URL="postgres://u@db.internal:5432/annotation",
        REDIS_URL="redis://cache.internal:6379/0",
        S3_BUCKET="media",
        S3_ENDPOINT_URL="http://127.0.0.1:9000",
        ALLOWED_HOSTS="annotate.example.org",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "db": "django.db.backends.postgresql",
        "layer": "channels_redis.core.RedisChannelLayer",
        "storage": "storages.backends.s3.S3Storage",
        "debug": False,
        "hosts": ["annotate.example.org"],
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SECRET_KEY must be set"),
        ({"DEBUG": "sometimes"}, "DEBUG='sometimes'"),
        ({"DEBUG": "1", "DATABASE_URL": "mysql://root@localhost/x"}, "DATABASE_URL must start with"),
        ({"DEBUG": "1", "REDIS_URL": "localhost:6379"}, "REDIS_URL must start with"),
        ({"DEBUG": "1", "INFERENCE_DEVICE": "tpu"}, "INFERENCE_DEVICE='tpu'"),
        ({"DEBUG": "1", "MAX_UPLOAD_BYTES": "lots"}, "MAX_UPLOAD_BYTES='lots'"),
        ({"DEBUG": "1", "INFERENCE_MODE": "gpu"}, "INFERENCE_MODE='gpu'"),
        ({"DEBUG": "1", "INFERENCE_MODE": "worker"}, "INFERENCE_MODE=worker needs REDIS_URL"),
    ],
    ids=["no-secret", "bad-debug", "bad-database", "bad-redis", "bad-device", "bad-int", "bad-mode", "worker-no-redis"],
)
def test_it_fails_loudly_on_bad_values(env: dict[str, str], message: str) -> None:
    result = load_settings(**env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_it_warns_a_deployment_that_runs_on_embedded_parts(settings: Any) -> None:
    from django.core.checks import run_checks

    embedded = {w.id for w in run_checks(include_deployment_checks=True, tags=["platform"])}
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        assert "platform.W001" in embedded
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
    assert {"platform.W002", "platform.W003"} <= {
        w.id for w in run_checks(include_deployment_checks=True, tags=["platform"])
    }
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://x:6379/0"]}}
    }
    assert "platform.W002" not in {w.id for w in run_checks(include_deployment_checks=True, tags=["platform"])}
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    assert run_checks(tags=["platform"]) == []  # deployment checks only: the demo stays quiet
