"""Media on S3 through django-storages, against moto's S3 API served on loopback: uploads land in the
bucket under the tenant-scoped key, the file view redirects members to a working presigned URL, and
/healthz round-trips through the bucket (and fails when the bucket is missing)."""

from __future__ import annotations

import io
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from django.core.files.storage import default_storage, storages
from django.test import Client
from django.urls import reverse
from moto.server import ThreadedMotoServer
from PIL import Image
from pytest_django import Settings
from storages.backends.s3 import S3Storage

from annotation.media_services import media_create_image
from annotation.models import MediaItem
from platform_core.storage import s3_storage
from tests.conftest import World
from tests.factories import png_bytes

BUCKET = "annotation-media-test"
REGION = "us-east-1"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    host: str
    port: int

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.url, region_name=REGION, **KEYS)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[S3Endpoint]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = S3Endpoint(url=f"http://{host}:{port}", host=host, port=port)
        endpoint.client().create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


def s3_storages(endpoint: S3Endpoint, settings: Settings, bucket: str) -> dict[str, Any]:
    default = s3_storage(
        bucket=bucket,
        endpoint_url=endpoint.url,
        region=REGION,
        access_key=KEYS["aws_access_key_id"],
        secret_key=KEYS["aws_secret_access_key"],
    )
    return {**settings.STORAGES, "default": default}


@pytest.fixture
def s3_media(world: World, s3_endpoint: S3Endpoint, settings: Settings) -> S3Endpoint:
    """The default storage switched to the bucket; requests `world` first so its media stays local."""
    settings.STORAGES = s3_storages(s3_endpoint, settings, BUCKET)
    return s3_endpoint


def same_pixels(left: bytes, right: bytes) -> bool:
    with Image.open(io.BytesIO(left)) as a, Image.open(io.BytesIO(right)) as b:
        return a.size == b.size and a.convert("RGBA").tobytes() == b.convert("RGBA").tobytes()


def bucket_keys(endpoint: S3Endpoint) -> set[str]:
    listing = endpoint.client().list_objects_v2(Bucket=BUCKET)
    return {entry["Key"] for entry in listing.get("Contents", [])}


def test_it_points_the_file_field_at_the_new_default_storage(s3_media: S3Endpoint) -> None:
    # The STORAGES override reached both the handler cache and the lazy default the FileField holds.
    assert isinstance(storages["default"], S3Storage)
    assert MediaItem._meta.get_field("file").storage is default_storage
    assert isinstance(default_storage, S3Storage)
    assert default_storage.bucket_name == BUCKET


def test_it_stores_an_upload_in_the_bucket_under_the_tenant_key(world: World, s3_media: S3Endpoint) -> None:
    before = bucket_keys(s3_media)
    data = png_bytes(33, 21)
    item = media_create_image(project=world.demo.project, name="field photo.png", data=data)
    prefix = f"org-{world.demo.org.pk}/project-{world.demo.project.pk}/"
    assert item.file.name.startswith(prefix)
    assert item.thumbnail.name.startswith(prefix)
    assert bucket_keys(s3_media) - before == {item.file.name, item.thumbnail.name}
    stored = s3_media.client().get_object(Bucket=BUCKET, Key=item.file.name)
    # Re-encoded on the way in: the same pixels, not necessarily the same bytes.
    assert same_pixels(stored["Body"].read(), data)
    assert stored["ContentType"] == "image/png"
    thumbnail = s3_media.client().get_object(Bucket=BUCKET, Key=item.thumbnail.name)
    assert thumbnail["ContentType"] == "image/webp"


def test_it_redirects_a_member_to_a_working_presigned_url(world: World, s3_media: S3Endpoint) -> None:
    data = png_bytes(17, 9)
    item = media_create_image(project=world.demo.project, name="photo.png", data=data)
    url = reverse("media_file", kwargs={"org_slug": world.demo.org.slug, "media_id": item.pk})
    client = Client()
    client.force_login(world.owner)
    response = client.get(url)
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert (location.scheme, location.hostname, location.port) == ("http", s3_media.host, s3_media.port)
    # Signed with SigV4 (X-Amz-*) and expiring; SigV2 (botocore's presign default here) is refused by new buckets.
    params = parse_qs(location.query)
    assert params["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert "X-Amz-Signature" in params
    assert params["X-Amz-Expires"] == ["3600"]
    with urllib.request.urlopen(response["Location"], timeout=10) as fetched:  # noqa: S310 - loopback http
        assert fetched.status == 200
        assert fetched.read() == data


@pytest.mark.parametrize("through", ["demo", "other"])
def test_it_gives_an_outsider_a_404_and_no_redirect(world: World, s3_media: S3Endpoint, through: str) -> None:
    # Through the demo organisation (not a member) and through the outsider's own organisation.
    item = media_create_image(project=world.demo.project, name="photo.png", data=png_bytes())
    org = getattr(world, through).org
    url = reverse("media_file", kwargs={"org_slug": org.slug, "media_id": item.pk})
    client = Client()
    client.force_login(world.outsider)
    response = client.get(url)
    assert response.status_code == 404
    assert "Location" not in response
    assert s3_media.url not in response.content.decode()


def test_it_reports_s3_storage_healthy(s3_media: S3Endpoint) -> None:
    before = bucket_keys(s3_media)
    response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["storage"]["ok"] is True
    assert body["checks"]["storage"]["backend"] == "S3Storage"
    assert "storage" not in body["failing"]
    # The probe file was written, read back and deleted.
    assert bucket_keys(s3_media) == before


def test_it_reports_a_missing_bucket_as_failing(
    db: None, s3_endpoint: S3Endpoint, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.STORAGES = s3_storages(s3_endpoint, settings, "no-such-bucket")
    response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 503, body
    assert "storage" in body["failing"]
    assert body["checks"]["storage"]["ok"] is False
    # The reason goes to the log (and to superusers), not to anonymous callers.
    assert "error" not in body["checks"]["storage"]
    assert any("NoSuchBucket" in record.getMessage() for record in caplog.records)
