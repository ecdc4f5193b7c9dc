"""The JSON form of an annotation, one shape for the REST API, the studio socket and its events."""

from __future__ import annotations

from typing import Any

from annotation.models import Annotation


def annotation_payload(annotation: Annotation) -> dict[str, Any]:
    """Everything a client needs to draw and edit the object. ``author`` is a username (null once
    the user is gone); load annotations with ``select_related("author")`` to avoid a query each.
    ``proposed`` marks a model's pre-annotation that no person has accepted or changed yet."""
    return {
        "id": annotation.pk,
        "media": annotation.media_id,
        "label": annotation.label_id,
        "frame": annotation.frame,
        "track": annotation.track,
        "rle": annotation.rle,
        "bbox": annotation.bbox,
        "area": annotation.area,
        "drawn": annotation.drawn,
        "answers": annotation.answers,
        "source": annotation.source,
        "source_detail": annotation.source_detail,
        "proposed": annotation.proposed,
        "author": annotation.author.username if annotation.author_id else None,
        "z_order": annotation.z_order,
        "version": annotation.version,
        "updated_at": annotation.updated_at.isoformat(),
    }
