"""``manage.py crowd_sync [--batch <id>]``: sync Mechanical Turk batches with MTurk once, here and
now (for cron): assignment states come back, reviewers' decisions go out (``crowd.mturk_ops.sync_batch``).

Without ``--batch`` it syncs every open MTurk batch, and every closed one that still has decisions
to send (closing a batch stops new work, not the review of work already done). One line per batch
on stdout; each failed MTurk call, and each MTurk assignment that needs a person, on stderr. The
command exits with an error when an MTurk call failed (the next run tries it again)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from crowd.models import CrowdBatch, Provider, ReviewAction
from crowd.mturk_jobs import mturk_client
from crowd.mturk_ops import UNDELIVERED, SyncReport, sync_batch


def batches_to_sync() -> list[CrowdBatch]:
    undelivered = ReviewAction.objects.filter(delivery__in=UNDELIVERED, assignment__isnull=False).values(
        "assignment__batch"
    )
    return list(
        CrowdBatch.objects.select_related("project__organization", "question", "label")
        .filter(provider=Provider.MTURK)
        .filter(Q(state=CrowdBatch.State.OPEN) | Q(pk__in=undelivered))
        .order_by("pk")
    )


class Command(BaseCommand):
    help = (
        "Sync Mechanical Turk batches once: record what MTurk says about their assignments and send the "
        "reviewers' approvals, rejections and bonuses. Every open MTurk batch (and closed ones with decisions "
        "still to send), or the one given by --batch."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, help="The batch's id (as in the admin); any state.")

    def handle(self, *args: Any, batch: int | None = None, **options: Any) -> None:
        # A command acts for no member of any organisation: whoever runs it on the server may sync
        # every batch; each sync then scopes its queries to the batch's organisation.
        batches = [self._one(batch)] if batch is not None else batches_to_sync()
        client = mturk_client()
        failed_calls = 0
        for each in batches:
            report = sync_batch(each, client)
            self.stdout.write(f"batch {each.pk} {each.name}: {report.summary()}")
            failed_calls += self._problems(each, report)
        if failed_calls:
            raise CommandError(f"{failed_calls} Mechanical Turk operations failed; the next sync tries them again.")

    def _one(self, batch_id: int) -> CrowdBatch:
        found = (
            CrowdBatch.objects.select_related("project__organization", "question", "label").filter(pk=batch_id).first()
        )
        if found is None:
            raise CommandError(f"No crowd batch with id {batch_id}.")
        if found.provider != Provider.MTURK:
            raise CommandError(f"Batch {batch_id} does not run on Mechanical Turk.")
        return found

    def _problems(self, batch: CrowdBatch, report: SyncReport) -> int:
        for row in report.errors:
            self.stderr.write(f"batch {batch.pk}: HIT {row['hit_id']} not listed: {row['error']}")
        for row in report.failed:
            self.stderr.write(f"batch {batch.pk}: {row['kind']} #{row['action']} not sent: {row['error']}")
        for row in [*report.unmatched, *report.conflicts]:
            self.stderr.write(f"batch {batch.pk}: assignment {row['assignment_id']}: {row['reason']}")
        return len(report.errors) + len(report.failed)
