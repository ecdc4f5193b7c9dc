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

from annotation.models import Annotation, Label, MediaItem, Project, Question, Task
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


class TaskKind(models.TextChoices):
    """What a worker gives for one unit: an answer to the question, or a mask of the label."""

    CLASSIFY = "classify", "Answer a question"
    MASK = "mask", "Draw a mask"


def _check_kind(*, kind: str, question: Question | None, label: Label | None, project_id: int | None) -> None:
    """A question task needs a question of the project (about each item, or about each object of
    its label: then the units are those objects); a mask task needs a mask label of the project."""
    if kind == TaskKind.CLASSIFY:
        if question is None:
            raise ValidationError({"question": "A question task needs a question."})
        if question.project_id != project_id:
            raise ValidationError({"question": "The question belongs to another project."})
    else:
        if label is None:
            raise ValidationError({"label": "A mask task needs the label to draw."})
        if label.project_id != project_id:
            raise ValidationError({"label": "The label belongs to another project."})
        if label.kind != Label.Kind.MASK:
            raise ValidationError({"label": "A mask task needs a mask label."})


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
    kind = models.CharField(max_length=10, choices=TaskKind.choices, default=TaskKind.CLASSIFY)
    # A question about each item, or about each object of the question's label (then each object is
    # a unit of work, shown as its mask over the image: the PartInventory "one or many" question).
    question = models.ForeignKey(
        Question, null=True, blank=True, on_delete=models.PROTECT, related_name="crowd_batches"
    )
    label = models.ForeignKey(
        Label,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="crowd_batches",
        help_text="Mask tasks: the label workers draw.",
    )
    assignments_per_item = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1)])
    gold_rate = models.FloatField(default=0.1, validators=unit_interval, help_text="Share of hidden gold items.")
    reward_cents = models.PositiveIntegerField(default=0)
    items_per_session = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(1)], help_text="Items one study-link visit is given."
    )
    agreement_threshold = models.FloatField(
        default=0.6,
        validators=unit_interval,
        help_text="Units whose agreement falls below this go to review (answers: share of the top answer; "
        "masks: mean pairwise IoU).",
    )
    assignment_minutes = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1)],
        help_text="An unanswered assignment is handed out again after this.",
    )
    hit_lifetime_hours = models.PositiveIntegerField(default=72, validators=[MinValueValidator(1)])
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
        _check_kind(kind=self.kind, question=self.question, label=self.label, project_id=self.project_id)

    @property
    def object_units(self) -> bool:
        """Units are the objects of the question's label, not whole items."""
        return self.kind == TaskKind.CLASSIFY and self.question is not None and self.question.label_id is not None


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
    """A unit whose answer is known (an answer to a question about an item or one of its objects, or
    a mask of a label): for the qualification test, hidden in batches, or both."""

    class Purpose(models.TextChoices):
        QUALIFICATION = "qualification", "Qualification test"
        HIDDEN = "hidden", "Hidden in batches"
        BOTH = "both", "Both"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="gold_items")
    media = models.ForeignKey(MediaItem, on_delete=models.CASCADE, related_name="gold_items")
    # Object units: the object the question is asked about (of the question's label, on ``media``).
    annotation = models.ForeignKey(
        Annotation, null=True, blank=True, on_delete=models.CASCADE, related_name="gold_items"
    )
    question = models.ForeignKey(Question, null=True, blank=True, on_delete=models.CASCADE, related_name="gold_items")
    answer = models.CharField(max_length=100, blank=True)
    # Mask gold: the label and the known mask (compressed RLE, as annotations store it).
    label = models.ForeignKey(Label, null=True, blank=True, on_delete=models.CASCADE, related_name="gold_items")
    rle = models.JSONField(default=dict, blank=True)
    purpose = models.CharField(max_length=20, choices=Purpose.choices, default=Purpose.HIDDEN)

    tenant_path = "project__organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["project", "purpose", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["media", "question"],
                condition=models.Q(annotation__isnull=True, question__isnull=False),
                name="golditem_unique_item_answer",
            ),
            models.UniqueConstraint(
                fields=["annotation", "question"],
                condition=models.Q(annotation__isnull=False),
                name="golditem_unique_object_answer",
            ),
            models.UniqueConstraint(
                fields=["media", "label"], condition=models.Q(question__isnull=True), name="golditem_unique_mask"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.media} = {self.answer or 'mask'}"

    @property
    def for_qualification(self) -> bool:
        return self.purpose in (self.Purpose.QUALIFICATION, self.Purpose.BOTH)

    @property
    def for_hidden(self) -> bool:
        return self.purpose in (self.Purpose.HIDDEN, self.Purpose.BOTH)

    def clean(self) -> None:
        if self.media_id is not None and self.media.project_id != self.project_id:
            raise ValidationError({"media": "The item belongs to another project."})
        if self.question_id is not None:
            _check_kind(kind=TaskKind.CLASSIFY, question=self.question, label=None, project_id=self.project_id)
            if self.answer not in self.question.choices:
                raise ValidationError({"answer": "The answer must be one of the question's choices."})
            if self.question.label_id is not None:
                if self.annotation_id is None or self.annotation.label_id != self.question.label_id:
                    raise ValidationError({"annotation": "Pick the object (of the question's label) it is about."})
                if self.annotation.media_id != self.media_id:
                    raise ValidationError({"annotation": "The object is on another item."})
            elif self.annotation_id is not None:
                raise ValidationError({"annotation": "A question about the whole item is not about one object."})
        else:
            _check_kind(kind=TaskKind.MASK, question=None, label=self.label, project_id=self.project_id)
            if not self.rle:
                raise ValidationError({"rle": "A mask gold item needs its mask."})


class QualificationTest(models.Model):
    """The test a worker passes before paid work on a project: ``item_count`` qualification gold items."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="qualification_test")
    kind = models.CharField(max_length=10, choices=TaskKind.choices, default=TaskKind.CLASSIFY)
    question = models.ForeignKey(Question, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    label = models.ForeignKey(Label, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    pass_mark = models.FloatField(default=0.8, validators=unit_interval)
    # Mask tests: a drawn mask counts as right when its IoU with the gold mask reaches this.
    iou_threshold = models.FloatField(default=0.7, validators=unit_interval)
    # Mechanical Turk: the custom qualification type whose integer value is the score in percent.
    mturk_qualification_type_id = models.CharField(max_length=64, blank=True)
    retake_delay_hours = models.PositiveIntegerField(default=24)
    item_count = models.PositiveSmallIntegerField(default=5, validators=[MinValueValidator(1)])

    tenant_path = "project__organization"
    objects = TenantQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Qualification for {self.project}"

    def clean(self) -> None:
        _check_kind(kind=self.kind, question=self.question, label=self.label, project_id=self.project_id)


class QualificationAttempt(models.Model):
    worker = models.ForeignKey(CrowdWorker, on_delete=models.CASCADE, related_name="qualification_attempts")
    test = models.ForeignKey(QualificationTest, on_delete=models.CASCADE, related_name="attempts")
    # The batch the worker came through: where a pass sends them on.
    batch = models.ForeignKey(CrowdBatch, on_delete=models.CASCADE, related_name="+")
    items = models.JSONField(default=list)  # server-only: the gold item ids shown, in order
    answers = models.JSONField(default=list, blank=True)  # choices, or compressed RLE masks
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
    # Object units: the object of the item the question is asked about.
    annotation = models.ForeignKey(
        Annotation, null=True, blank=True, on_delete=models.CASCADE, related_name="crowd_assignments"
    )
    is_gold = models.BooleanField(default=False)  # server-only
    gold_correct = models.BooleanField(null=True)  # server-only: set when a gold answer comes in
    gold_score = models.FloatField(null=True, blank=True)  # server-only: mask IoU against the gold mask
    state = models.CharField(max_length=20, choices=State.choices, default=State.ASSIGNED)
    answer = models.CharField(max_length=100, blank=True)
    answer_rle = models.JSONField(default=dict, blank=True)  # mask tasks: compressed RLE
    # After this an unanswered assignment no longer holds its unit (it is handed out again).
    expires_at = models.DateTimeField(null=True, blank=True)
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
            models.UniqueConstraint(
                fields=["batch", "worker", "media"],
                condition=models.Q(annotation__isnull=True),
                name="crowdassignment_once_per_worker",
            ),
            models.UniqueConstraint(
                fields=["batch", "worker", "annotation"],
                condition=models.Q(annotation__isnull=False),
                name="crowdassignment_object_once_per_worker",
            ),
            models.UniqueConstraint(
                fields=["assignment_id"],
                condition=~models.Q(assignment_id=""),
                name="crowdassignment_unique_mturk_assignment",
            ),
        ]
        indexes = [models.Index(fields=["batch", "media"], name="crowdassignment_batch_media")]

    def __str__(self) -> str:
        return f"{self.worker} · {self.media}"


class CrowdHit(models.Model):
    """A Mechanical Turk HIT published for a batch; its assignments pick their unit on arrival."""

    batch = models.ForeignKey(CrowdBatch, on_delete=models.CASCADE, related_name="hits")
    hit_id = models.CharField(max_length=64, unique=True)
    max_assignments = models.PositiveIntegerField(default=1)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "batch__project__organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["batch", "id"]
        verbose_name = "MTurk HIT"

    def __str__(self) -> str:
        return self.hit_id


class CrowdResult(models.Model):
    """The aggregated answer (or mask) of one unit of a batch, its agreement, and whether it goes
    to review."""

    class Method(models.TextChoices):
        MAJORITY = "majority", "Majority vote"
        DAWID_SKENE = "dawid_skene", "Dawid-Skene"
        MASK_MAJORITY = "mask_majority", "Per-pixel majority"

    batch = models.ForeignKey(CrowdBatch, on_delete=models.CASCADE, related_name="results")
    media = models.ForeignKey(MediaItem, on_delete=models.CASCADE, related_name="crowd_results")
    annotation = models.ForeignKey(
        Annotation, null=True, blank=True, on_delete=models.CASCADE, related_name="crowd_results"
    )
    method = models.CharField(max_length=20, choices=Method.choices)
    answer = models.CharField(max_length=100, blank=True)
    rle = models.JSONField(default=dict, blank=True)
    votes = models.JSONField(default=dict, blank=True)  # {answer: count}, or {"masks": n}
    agreement = models.FloatField(null=True, blank=True)
    needs_review = models.BooleanField(default=False)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    tenant_path = "batch__project__organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["batch", "media", "annotation"]
        constraints = [
            models.UniqueConstraint(
                fields=["batch", "media"], condition=models.Q(annotation__isnull=True), name="crowdresult_one_per_item"
            ),
            models.UniqueConstraint(
                fields=["batch", "annotation"],
                condition=models.Q(annotation__isnull=False),
                name="crowdresult_one_per_object",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.batch} · {self.media}: {self.answer or 'mask'}"


class ReviewAction(models.Model):
    """The audit record of a reviewer's decision: approving or rejecting a crowd assignment or a
    member's submitted task, a bonus, a block or unblock. Never edited after the fact except for
    the state of its delivery to the provider (MTurk approve / reject / bonus calls are made by the
    sync job, which reads the pending ones)."""

    class Kind(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"
        BONUS = "bonus", "Bonus"
        BLOCK = "block", "Block"
        UNBLOCK = "unblock", "Unblock"

    class Delivery(models.TextChoices):
        NONE = "none", "Nothing to send"
        PENDING = "pending", "To send"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="review_actions")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    assignment = models.ForeignKey(
        CrowdAssignment, null=True, blank=True, on_delete=models.CASCADE, related_name="review_actions"
    )
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.CASCADE, related_name="review_actions")
    worker = models.ForeignKey(
        CrowdWorker, null=True, blank=True, on_delete=models.CASCADE, related_name="review_actions"
    )
    reason = models.CharField(max_length=1000, blank=True)
    amount_cents = models.PositiveIntegerField(default=0)
    # The reviewer's form carries a fresh key: the same key twice (a double click, a retried post)
    # is one action. Bonuses send MTurk a UniqueRequestToken made from the row id.
    request_key = models.CharField(max_length=64, blank=True)
    delivery = models.CharField(max_length=10, choices=Delivery.choices, default=Delivery.NONE)
    delivery_error = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "request_key"],
                condition=~models.Q(request_key=""),
                name="reviewaction_unique_request_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by {self.actor}"
