"""Projects, their labels and their media."""

from __future__ import annotations

import uuid
from pathlib import PurePosixPath

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from platform_core.models import Organization
from platform_core.tenancy import TenantQuerySet

hex_colour = RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a colour like #1f77b4.")


class Project(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="project_unique_name_per_organization"),
        ]

    def __str__(self) -> str:
        return self.name


class Label(models.Model):
    class Kind(models.TextChoices):
        MASK = "mask", "Mask"
        BOX = "box", "Box"
        CLASSIFICATION = "classification", "Classification"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=100)
    color = models.CharField(max_length=7, default="#1f77b4", validators=[hex_colour])
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.MASK)
    order = models.PositiveIntegerField(default=0)

    tenant_path = "project__organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["project", "order", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="label_unique_name_per_project"),
        ]

    def __str__(self) -> str:
        return self.name


def media_upload_to(instance: MediaItem, filename: str) -> str:
    # Storage keys carry the organisation and project so a bucket can be split or audited per
    # tenant; the random name keeps user-supplied file names out of storage paths.
    suffix = PurePosixPath(filename).suffix.lower()
    return f"org-{instance.project.organization_id}/project-{instance.project_id}/{uuid.uuid4().hex}{suffix}"


class MediaItem(models.Model):
    class Kind(models.TextChoices):
        IMAGE = "image", "Image"
        VIDEO = "video", "Video"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="media")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.IMAGE)
    file = models.FileField(upload_to=media_upload_to, max_length=300)
    original_name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size_bytes = models.PositiveBigIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "project__organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["project", "id"]
        verbose_name = "media item"

    def __str__(self) -> str:
        return self.original_name
