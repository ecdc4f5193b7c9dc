from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class PlatformCoreConfig(AppConfig):
    default = True
    default_auto_field = "django.db.models.BigAutoField"
    name = "platform_core"
    verbose_name = "Platform"

    def ready(self) -> None:
        # Imported for their side effects: the deployment checks, and the receivers that push
        # access.changed to a user's open sockets.
        from platform_core import checks, signals  # noqa: F401


class PlatformAdminConfig(admin_apps.AdminConfig):
    """Django admin with the tenant-aware site as the default site."""

    default = False
    default_site = "platform_core.admin_site.PlatformAdminSite"
