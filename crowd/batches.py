"""Writes on crowd batches from the manager's pages: creating a batch, closing and reopening it.

Managers and owners only; the project (and so the batch) must be the tenant's."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404

from annotation.models import Project
from crowd.models import CrowdBatch
from platform_core.models import Role
from platform_core.tenancy import Tenant

BATCH_FIELDS = frozenset(
    {
        "name",
        "kind",
        "question",
        "label",
        "provider",
        "assignments_per_item",
        "gold_rate",
        "reward_cents",
        "items_per_session",
        "agreement_threshold",
        "completion_code",
        "screenout_code",
    }
)


def _require_manager(tenant: Tenant) -> None:
    if not tenant.has_role(Role.MANAGER):
        raise PermissionDenied("Only managers and owners run crowd batches.")


def batch_create(*, tenant: Tenant, project: Project, actor: Any, **fields: Any) -> CrowdBatch:
    """A new open batch of ``project``; the model's checks (question or mask label of this project,
    shares between 0 and 1) refuse anything else with a ValidationError."""
    _require_manager(tenant)
    if project.organization_id != tenant.org.pk:
        raise Http404("No such project.")
    unknown = set(fields) - BATCH_FIELDS
    if unknown:
        raise TypeError(f"batch_create() does not take {', '.join(sorted(unknown))}.")
    batch = CrowdBatch(project=project, created_by=actor, **fields)
    batch.full_clean()
    batch.save()
    return batch


def batch_set_state(*, tenant: Tenant, batch: CrowdBatch, state: str, actor: Any) -> CrowdBatch:
    """Close a batch (no further assignments are handed out; answers already given stay) or reopen it."""
    _require_manager(tenant)
    if batch.project.organization_id != tenant.org.pk:
        raise Http404("No such crowd batch.")
    if state not in CrowdBatch.State.values:
        raise ValueError(f"Unknown batch state {state!r}.")
    with transaction.atomic():
        batch = CrowdBatch.objects.select_for_update(of=("self",)).select_related("project").get(pk=batch.pk)
        if batch.state != state:
            batch.state = state
            batch.save(update_fields=["state"])
    return batch
