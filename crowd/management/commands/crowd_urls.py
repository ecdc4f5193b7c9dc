"""``manage.py crowd_urls [--batch <id>]``: the worker entry URL of each open batch (or of one batch),
one per line as ``<kind> <url>``, absolute from ``SITE_URL``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from crowd.models import CrowdBatch
from crowd.selectors import batch_entry_urls


class Command(BaseCommand):
    help = "Print the worker entry URLs of open crowd batches (or of one batch) as '<kind> <url>'."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, help="The batch's id (as in the admin); any state.")

    def handle(self, *args: Any, batch: int | None = None, **options: Any) -> None:
        if batch is not None:
            batches = list(CrowdBatch.objects.filter(pk=batch))
            if not batches:
                raise CommandError(f"No crowd batch with id {batch}.")
        else:
            batches = list(CrowdBatch.objects.filter(state=CrowdBatch.State.OPEN).order_by("pk"))
        for each in batches:
            for kind, url in batch_entry_urls(each):
                self.stdout.write(f"{kind} {url}")
