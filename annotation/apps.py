from __future__ import annotations

from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "annotation"

    def ready(self) -> None:
        from django.conf import settings
        from PIL import Image

        from annotation import signals  # noqa: F401 - connects the receivers

        # Pillow refuses images past twice its own limit while opening them; tie that limit to the
        # platform's so MAX_IMAGE_PIXELS is the one setting that decides.
        Image.MAX_IMAGE_PIXELS = settings.MAX_IMAGE_PIXELS
