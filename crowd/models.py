"""Crowd batches, crowd workers, gold items, qualification tests and their attempts, and the
assignments that hand one item of a batch to one worker.

Crowd workers are not users or members: they reach their own assignments and attempts through
signed tokens (``crowd.tokens``) and nothing else. Fields marked server-only (``is_gold``,
``gold_correct``, ``QualificationAttempt.items``) never reach a worker's page.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from annotation.models import MediaItem, Project, Question
from platform_core.models import Organization
from platform_core.tenancy import TenantQuerySet

unit_interval = [MinValueValidator(0.0), MaxValueValidator(1.0)]


def new_public_id() -> str:
    return secrets.token_urlsafe(12)


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


class Provider(models.TextChoices):
    INTERNAL = "internal", "Own annotators"
    LINK = "link", "Study link (Prolific-style)"
    MTURK = "mturk", "Mechanical Turk"


def _check_item_question(question: Question | None, project_id: int | None) -> None:
    if question is None:
        return
    if question.project_id != project_id:
        raise ValidationError({"question": "The question belongs to another project."})
    if question.label_id is not None:
        raise ValidationError({"question": "Crowd workers answer questions about each item (no label)."})


class CrowdBatch(models.Model):
    """Items of a project handed to crowd workers, ``assignments_per_item`` answers each."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="crowd_batches")
    name = models.CharField(max_length=200)
    # What the entry URL carries instead of the primary key: batch ids are not guessable.
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    provider = models.CharField(max_length=20, choices=Provider.choices, default=Provider.LINK)
    question = models.ForeignKey(Question, on_delete=models.PROTECT, related_name="crowd_batches")
    assignments_per_item = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1)])
    gold_rate = models.FloatField(default=0.1, validators=unit_interval, help_text="Share of hidden gold items.")
    reward_cents = models.PositiveIntegerField(default=0)
    items_per_session = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(1)], help_text="Items one study-link visit is given."
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    completion_code = models.CharField(max_length=64, blank=True)
    screenout_code = models.CharField(max_length=64, blank=True)
    hit_type_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "project__organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["project", "-created_at"]
        verbose_name_plural = "crowd batches"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.question_id is not None:
            _check_item_question(self.question, self.project_id)


class CrowdWorker(models.Model):
    """A person working through a provider; one row per organisation, provider and provider id."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="crowd_workers")
    provider = models.CharField(max_length=20, choices=Provider.choices)
    external_id = models.CharField(max_length=100)
    blocked = models.BooleanField(default=False)
    block_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["organization", "provider", "external_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "provider", "external_id"], name="crowdworker_unique_per_provider"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.external_id}"


class GoldItem(models.Model):
    """An item whose answer to a question is known: for the qualification test, or hidden in batches."""

    class Purpose(models.TextChoices):
        QUALIFICATION = "qualification", "Qualification test"
        HIDDEN = "hidden", "Hidden in batches"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="gold_items")
    media = models.ForeignKey(MediaItem, on_delete=models.CASCADE, related_name="gold_items")
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="gold_items")
    answer = models.CharField(max_length=100)
    purpose = models.CharField(max_length=20, choices=Purpose.choices, default=Purpose.HIDDEN)

    tenant_path = "project__organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["project", "purpose", "id"]
        constraints = [
            models.UniqueConstraint(fields=["media", "question", "purpose"], name="golditem_unique_per_question"),
        ]

    def __str__(self) -> str:
        return f"{self.media} = {self.answer}"

    def clean(self) -> None:
        if self.media_id is not None and self.media.project_id != self.project_id:
            raise ValidationError({"media": "The item belongs to another project."})
        if self.question_id is not None:
            _check_item_question(self.question, self.project_id)
            if self.answer not in self.question.choices:
                raise ValidationError({"answer": "The answer must be one of the question's choices."})


class QualificationTest(models.Model):
    """The test a worker passes before paid work on a project: ``item_count`` qualification gold items."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="qualification_test")
    question = models.ForeignKey(Question, on_delete=models.PROTECT, related_name="+")
    pass_mark = models.FloatField(default=0.8, validators=unit_interval)
    retake_delay_hours = models.PositiveIntegerField(default=24)
    item_count = models.PositiveSmallIntegerField(default=5, validators=[MinValueValidator(1)])

    tenant_path = "project__organization"
    objects = TenantQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Qualification for {self.project}"

    def clean(self) -> None:
        if self.question_id is not None:
            _check_item_question(self.question, self.project_id)


class QualificationAttempt(models.Model):
    worker = models.ForeignKey(CrowdWorker, on_delete=models.CASCADE, related_name="qualification_attempts")
    test = models.ForeignKey(QualificationTest, on_delete=models.CASCADE, related_name="attempts")
    # The batch the worker came through: where a pass sends them on.
    batch = models.ForeignKey(CrowdBatch, on_delete=models.CASCADE, related_name="+")
    items = models.JSONField(default=list)  # server-only: the gold item ids shown, in order
    answers = models.JSONField(default=list, blank=True)
    # The provider's parameters of the visit (study and session, or MTurk assignment and HIT).
    context = models.JSONField(default=dict, blank=True)
    score = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True)
    token_nonce = models.CharField(max_length=32, default=new_nonce)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "test__project__organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["worker", "-started_at"]

    def __str__(self) -> str:
        return f"{self.worker} on {self.test}"


class CrowdAssignment(models.Model):
    """One item of a batch for one worker, and their answer."""

    class State(models.TextChoices):
        ASSIGNED = "assigned", "Assigned"
        SUBMITTED = "submitted", "Submitted"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    batch = models.ForeignKey(CrowdBatch, on_delete=models.CASCADE, related_name="assignments")
    worker = models.ForeignKey(CrowdWorker, on_delete=models.CASCADE, related_name="assignments")
    media = models.ForeignKey(MediaItem, on_delete=models.CASCADE, related_name="crowd_assignments")
    is_gold = models.BooleanField(default=False)  # server-only
    gold_correct = models.BooleanField(null=True)  # server-only: set when a gold answer comes in
    state = models.CharField(max_length=20, choices=State.choices, default=State.ASSIGNED)
    answer = models.CharField(max_length=100, blank=True)
    token_nonce = models.CharField(max_length=32, default=new_nonce)
    # Mechanical Turk's ids and where its form posts; a study link's study and session.
    assignment_id = models.CharField(max_length=64, blank=True)
    hit_id = models.CharField(max_length=64, blank=True)
    turk_submit_to = models.CharField(max_length=200, blank=True)
    study_id = models.CharField(max_length=100, blank=True)
    session_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_reason = models.CharField(max_length=1000, blank=True)

    tenant_path = "batch__project__organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["batch", "id"]
        constraints = [
            # The database itself refuses a second copy of an item for one worker.
            models.UniqueConstraint(fields=["batch", "worker", "media"], name="crowdassignment_once_per_worker"),
            models.UniqueConstraint(
                fields=["assignment_id"],
                condition=~models.Q(assignment_id=""),
                name="crowdassignment_unique_mturk_assignment",
            ),
        ]
        indexes = [models.Index(fields=["batch", "media"], name="crowdassignment_batch_media")]

    def __str__(self) -> str:
        return f"{self.worker} · {self.media}"
