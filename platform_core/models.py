"""Organisations (the tenants), memberships and roles."""

from __future__ import annotations

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
