"""Serving stored media: the file and its thumbnail reach members only (404 for everyone else),
with long private caching, revalidation by ETag, nosniff and an inline disposition; on S3 the
member is redirected to a signed URL that answers with the same headers."""

from __future__ import annotations

import io
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from moto.server import ThreadedMotoServer
from PIL import Image
from pytest_django import Settings

from annotation.media_services import media_create_image
from annotation.models import MediaItem
from tests.conftest import World
from tests.factories import png_bytes
from tests.platform_core.test_storage_s3 import BUCKET, S3Endpoint, s3_storages

CACHE_CONTROL = "private, max-age=86400, immutable"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Endpoint]:
    """moto's S3 API on loopback, as in tests/platform_core/test_storage_s3.py."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = S3Endpoint(url=f"http://{host}:{port}", host=host, port=port)
        endpoint.client().create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def s3_media(world: World, s3_server: S3Endpoint, settings: Settings) -> S3Endpoint:
    """Media storage switched to the bucket (after `world`, whose media stays local)."""
    settings.STORAGES = s3_storages(s3_server, settings, BUCKET)
    return s3_server


def url(name: str, world: World, item: MediaItem | None = None, *, org: Any = None) -> str:
    item = item or world.demo.media
    return reverse(name, kwargs={"org_slug": (org or world.demo.org).slug, "media_id": item.pk})


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def stored(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def tiff_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (900, 600), (10, 120, 200)).save(buffer, format="TIFF")
    return buffer.getvalue()


def test_it_serves_the_file_with_cache_and_safety_headers(world: World) -> None:
    item = media_create_image(project=world.demo.project, name="Scan «7».tif", data=tiff_bytes())
    response = client_for(world.owner).get(url("media_file", world, item))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert body(response) == stored(item.file.name)
    assert response["Cache-Control"] == CACHE_CONTROL
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["ETag"].startswith('"') and len(response["ETag"]) > 20
    assert "Last-Modified" in response
    # Inline, under the uploaded name with the stored format's extension (the TIFF became a PNG).
    disposition = response["Content-Disposition"]
    assert disposition.startswith("inline;")
    assert "filename*=utf-8''Scan%20%C2%AB7%C2%BB.png" in disposition


def test_it_serves_the_webp_thumbnail(world: World) -> None:
    item = media_create_image(project=world.demo.project, name="big.tif", data=tiff_bytes())
    response = client_for(world.reviewer).get(url("media_thumbnail", world, item))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    data = body(response)
    assert data == stored(item.thumbnail.name)
    with Image.open(io.BytesIO(data)) as thumbnail:
        assert (thumbnail.format, thumbnail.size) == ("WEBP", (320, 213))
    assert response["Cache-Control"] == CACHE_CONTROL
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith('inline; filename="big (thumbnail).webp"')
    assert response["ETag"] != client_for(world.owner).get(url("media_file", world, item))["ETag"]


@pytest.mark.parametrize("name", ["media_file", "media_thumbnail"])
def test_it_answers_not_modified_to_a_matching_etag(world: World, name: str) -> None:
    client = client_for(world.owner)
    etag = client.get(url(name, world))["ETag"]
    response = client.get(url(name, world), HTTP_IF_NONE_MATCH=f'W/"other", {etag}')
    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag
    assert response["Cache-Control"] == CACHE_CONTROL
    assert client.get(url(name, world), HTTP_IF_NONE_MATCH='"other"').status_code == 200


def test_it_makes_the_thumbnail_of_an_item_stored_before_thumbnails(world: World) -> None:
    item = world.demo.media
    default_storage.delete(item.thumbnail.name)
    MediaItem.objects.filter(pk=item.pk).update(thumbnail="")
    response = client_for(world.owner).get(url("media_thumbnail", world))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    item.refresh_from_db()
    assert item.thumbnail.name  # kept for the next request
    assert body(response) == stored(item.thumbnail.name)


def test_it_serves_the_original_when_no_thumbnail_can_be_made(world: World) -> None:
    item = world.demo.media
    MediaItem.objects.filter(pk=item.pk).update(thumbnail="")
    with default_storage.open(item.file.name, "wb") as handle:
        handle.write(b"not an image any more")
    response = client_for(world.owner).get(url("media_thumbnail", world))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert body(response) == b"not an image any more"


@pytest.mark.parametrize("name", ["media_file", "media_thumbnail"])
@pytest.mark.parametrize("through", ["demo", "other"])
def test_it_gives_an_outsider_a_404(world: World, name: str, through: str) -> None:
    # Through the demo organisation (not a member) and through the outsider's own organisation.
    response = client_for(world.outsider).get(url(name, world, org=getattr(world, through).org))
    assert response.status_code == 404
    assert response.get("Content-Type", "").startswith("text/html")


@pytest.mark.parametrize("name", ["media_file", "media_thumbnail"])
def test_it_gives_an_annotator_a_404_outside_their_tasks(world: World, name: str) -> None:
    item = media_create_image(project=world.demo.project, name="not-yours.png", data=png_bytes())
    assert client_for(world.annotator).get(url(name, world, world.demo.media)).status_code == 200
    assert client_for(world.annotator).get(url(name, world, item)).status_code == 404


@pytest.mark.parametrize("name", ["media_file", "media_thumbnail"])
def test_it_sends_an_anonymous_visitor_to_sign_in(world: World, name: str) -> None:
    response = Client().get(url(name, world))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", ["media_file", "media_thumbnail"])
def test_it_refuses_other_methods(world: World, name: str) -> None:
    assert client_for(world.owner).post(url(name, world)).status_code == 405


@pytest.mark.parametrize(
    ("name", "field", "content_type"),
    [("media_file", "file", "image/png"), ("media_thumbnail", "thumbnail", "image/webp")],
)
def test_it_redirects_to_a_signed_url_that_answers_with_the_same_headers(
    world: World, s3_media: S3Endpoint, name: str, field: str, content_type: str
) -> None:
    item = media_create_image(project=world.demo.project, name="field photo.png", data=png_bytes(700, 350))
    response = client_for(world.owner).get(url(name, world, item))
    assert response.status_code == 302
    assert response["Location"].startswith(s3_media.url + "/")
    assert response["Cache-Control"] == "private, no-store"  # the signed URL expires
    with urllib.request.urlopen(response["Location"], timeout=10) as fetched:  # noqa: S310 - loopback http
        assert fetched.status == 200
        assert fetched.read() == stored(getattr(item, field).name)
        assert fetched.headers["Content-Type"] == content_type
        assert fetched.headers["Cache-Control"] == CACHE_CONTROL
        assert fetched.headers["Content-Disposition"].startswith("inline;")


def test_it_gives_an_outsider_a_404_and_no_signed_url_for_a_thumbnail(world: World, s3_media: S3Endpoint) -> None:
    item = media_create_image(project=world.demo.project, name="photo.png", data=png_bytes())
    response = client_for(world.outsider).get(url("media_thumbnail", world, item))
    assert response.status_code == 404
    assert "Location" not in response
    assert s3_media.url not in response.content.decode()
