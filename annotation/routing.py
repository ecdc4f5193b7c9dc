"""Websocket routes of the annotation app, gathered by platform_core.routing."""

from __future__ import annotations

from django.urls import path

from annotation.studio.consumers import StudioConsumer

websocket_urlpatterns = [
    path("ws/o/<slug:org_slug>/studio/<int:media_id>/", StudioConsumer.as_asgi(), name="ws_studio"),
]
