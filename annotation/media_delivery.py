"""Tenant-checked delivery of stored media: the normalised file, its thumbnail and a video's frames.

Local files are streamed by the view; on S3 the view answers with a redirect to a short-lived
signed URL. Stored names are random and never rewritten (a new upload is a new name), so a
browser may keep what it fetched: ``immutable`` for a day, private to the signed-in user.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

from django.core.files.storage import FileSystemStorage, Storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotModified, HttpResponseRedirect
from django.utils.http import http_date
from django.views.decorators.http import require_GET

from annotation.image_files import THUMBNAIL_CONTENT_TYPE
from annotation.media_services import media_thumbnail_ensure
from annotation.models import MediaItem
from annotation.selectors import media_get
from annotation.video_files import FRAME_CONTENT_TYPE
from annotation.video_services import frame_name
from platform_core.tenancy import member_required

CACHE_CONTROL = "private, max-age=86400, immutable"


@member_required
@require_GET
def media_file(request: HttpRequest, media_id: int) -> HttpResponse:
    """The stored (normalised) file."""
    item = media_get(request.tenant, media_id)
    return _serve(request, item, item.file.storage, item.file.name, item.content_type, suffix="")


@member_required
@require_GET
def media_frame(request: HttpRequest, video_id: int, frame: int) -> HttpResponse:
    """One extracted frame of a video (a media item) as JPEG, ``frame`` from 0; 404 while the
    frames are not ready."""
    item = media_get(request.tenant, video_id)
    ready = item.kind == MediaItem.Kind.VIDEO and item.state == MediaItem.State.READY and item.frames_prefix
    if not ready or frame >= (item.frame_count or 0):
        raise Http404("No such frame.")
    name = frame_name(item.frames_prefix, frame)
    return _serve(request, item, item.file.storage, name, FRAME_CONTENT_TYPE, suffix=f" frame {frame}")


@member_required
@require_GET
def media_thumbnail(request: HttpRequest, media_id: int) -> HttpResponse:
    """The WebP thumbnail (longest side about 320 px). An image stored before thumbnails existed
    gets one made and kept on its first request; if none can be made, the full file is served."""
    item = media_get(request.tenant, media_id)
    if media_thumbnail_ensure(item=item):
        return _serve(
            request, item, item.thumbnail.storage, item.thumbnail.name, THUMBNAIL_CONTENT_TYPE, suffix=" (thumbnail)"
        )
    if item.kind == MediaItem.Kind.IMAGE:
        return _serve(request, item, item.file.storage, item.file.name, item.content_type, suffix="")
    raise Http404("No thumbnail for this item.")


def _serve(
    request: HttpRequest, item: MediaItem, storage: Storage, name: str, content_type: str, *, suffix: str
) -> HttpResponse:
    filename = _download_name(item, name, suffix)
    if not isinstance(storage, FileSystemStorage):
        # The bucket answers with the same headers the view would have sent.
        url = storage.url(
            name,
            parameters={
                "ResponseCacheControl": CACHE_CONTROL,
                "ResponseContentDisposition": f'inline; filename="{_ascii(filename)}"',
                "ResponseContentType": content_type,
            },
        )
        response: HttpResponse = HttpResponseRedirect(url)
        # The signed URL expires; the redirect itself must be asked for each time.
        response["Cache-Control"] = "private, no-store"
        return response
    etag = '"' + hashlib.sha256(name.encode()).hexdigest()[:32] + '"'
    if etag in _etags(request.headers.get("If-None-Match", "")):
        response = HttpResponseNotModified()
    else:
        try:
            handle = storage.open(name, "rb")
        except FileNotFoundError:
            raise Http404("The stored file is missing.") from None
        response = FileResponse(handle, content_type=content_type, as_attachment=False, filename=filename)
        response["Last-Modified"] = http_date(item.created_at.timestamp())
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    # Browsers must not guess a type other than the one sent.
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _download_name(item: MediaItem, stored_name: str, suffix: str) -> str:
    """The uploaded name with the stored format's extension (a TIFF is served as the PNG it became)."""
    original = PurePosixPath(item.original_name.replace("\\", "/")).name or "media"
    return f"{PurePosixPath(original).stem}{suffix}{PurePosixPath(stored_name).suffix}"


def _ascii(name: str) -> str:
    return name.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
