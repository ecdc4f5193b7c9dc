"""Organisations (the tenants), memberships and roles."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from platform_core.tenancy import TenantQuerySet


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    MANAGER = "manager", "Manager"
    REVIEWER = "reviewer", "Reviewer"
    ANNOTATOR = "annotator", "Annotator"

    @property
    def rank(self) -> int:
        # Higher rank includes the rights of every lower one.
        return {"annotator": 1, "reviewer": 2, "manager": 3, "owner": 4}[self.value]

    def at_least(self, other: Role) -> bool:
        return self.rank >= Role(other).rank

    @classmethod
    def managing(cls) -> tuple[Role, ...]:
        """Roles that may run the organisation from Django admin."""
        return (cls.OWNER, cls.MANAGER)


class Organization(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # An organisation is its own tenant.
    tenant_path = "pk"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ANNOTATOR)
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["organization__name", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="membership_unique_user_organization"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.get_role_display()})"


class Invitation(models.Model):
    """An invitation to join an organisation with a role: sent by e-mail, or shared as a link.

    The link carries a signed token naming this row; it expires (``expires_at``) and works once
    (``accepted_at``). Revoking deletes the row, which also kills the link."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(blank=True, help_text="Empty for an invitation shared as a link.")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ANNOTATOR)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    tenant_path = "organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["organization", "-created_at"]

    def __str__(self) -> str:
        return f"{self.email or 'link'} → {self.organization} ({self.get_role_display()})"


def job_result_upload_to(instance: Job, filename: str) -> str:
    # Under the organisation's key prefix, like media; a folder per file keeps the name the code
    # chose (it is the download's name) without collisions.
    return f"org-{instance.organization_id}/jobs/{uuid.uuid4().hex}/{filename}"


class Job(models.Model):
    """A tenant-scoped record of one long piece of work run through the Tasks API (imports,
    exports, automatic masks, video propagation, crowd syncs): what, by whom, how far, how it ended."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="jobs")
    project = models.ForeignKey(
        "annotation.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )
    kind = models.CharField(max_length=40)
    params = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    report = models.JSONField(default=dict, blank=True)
    result_file = models.FileField(upload_to=job_result_upload_to, max_length=300, blank=True)
    task_result_id = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "state"], name="job_org_state")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.get_state_display()})"

    @property
    def percent(self) -> int:
        if self.state == self.State.SUCCEEDED:
            return 100
        if not self.progress_total:
            return 0
        return min(100, round(100 * self.progress_done / self.progress_total))

    @property
    def finished(self) -> bool:
        return self.state in (self.State.SUCCEEDED, self.State.FAILED, self.State.CANCELLED)
