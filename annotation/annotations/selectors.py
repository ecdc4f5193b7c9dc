"""Reads on annotations, always through the tenant and the item they are on.

The item itself is fetched first with ``annotation.selectors.media_get``, which applies the
annotator-scope rule; these reads then stay inside that item."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from annotation.models import Annotation, Label, MediaItem
from platform_core.tenancy import Tenant, get_for_org_or_404


def annotation_list(tenant: Tenant, media: MediaItem, frame: int | None = None) -> QuerySet[Annotation]:
    """The item's annotations, bottom to top (``z_order``, then creation); with ``frame``, only
    that frame's (an image's annotations have no frame, so leave it out for images)."""
    annotations = Annotation.objects.for_org(tenant.org).filter(media=media)
    if frame is not None:
        annotations = annotations.filter(frame=frame)
    return annotations.select_related("author").order_by("z_order", "id")


def annotation_get(tenant: Tenant, media: MediaItem, annotation_id: int) -> Annotation:
    """One annotation of ``media``: another organisation's, another item's and a missing one are
    the same 404."""
    queryset = Annotation.objects.filter(media=media).select_related("author")
    annotation = get_for_org_or_404(queryset, tenant.org, pk=annotation_id)
    annotation.media = media  # with its project and task, as media_get loaded them
    return annotation


def label_for_item(tenant: Tenant, media: MediaItem, label_id: int | str) -> Label:
    """The label an annotation of ``media`` may take, by id.

    The label is a value in the request, not the object the URL names, so a label of another
    project (or another organisation, or none at all) is a refused value, a ValidationError on
    ``label``, with the same words for each so nothing is revealed."""
    if (
        isinstance(label_id, bool)
        or not isinstance(label_id, int | str)
        or not str(label_id).isdigit()
        or len(str(label_id)) > 18
    ):
        raise ValidationError({"label": "Give the label as its id, a whole number."})
    label = Label.objects.for_org(tenant.org).filter(project_id=media.project_id, pk=int(label_id)).first()
    if label is None:
        raise ValidationError({"label": f"No label with id {label_id} in this item's project."})
    return label
