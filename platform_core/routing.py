"""Websocket URL routes of every app."""

from __future__ import annotations

from django.urls import path

from annotation.routing import websocket_urlpatterns as annotation_websockets
from platform_core.jobs.consumers import JobsConsumer
from platform_core.websockets import PingConsumer

websocket_urlpatterns = [
    path("ws/o/<slug:org_slug>/ping/", PingConsumer.as_asgi(), name="ws_ping"),
    path("ws/o/<slug:org_slug>/jobs/", JobsConsumer.as_asgi(), name="ws_jobs"),
    *annotation_websockets,
]
