"""Projects, their labels and questions, their media, the tasks that split the media among
annotators, and the annotations drawn on them."""

from __future__ import annotations

import uuid
from pathlib import PurePosixPath

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse

from platform_core.models import Organization
from platform_core.tenancy import TenantQuerySet

hex_colour = RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a colour like #1f77b4.")


class Project(models.Model):
    class MediaType(models.TextChoices):
        IMAGES = "images", "Images"
        VIDEOS = "videos", "Videos"
        BOTH = "both", "Images and videos"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    media_type = models.CharField(max_length=10, choices=MediaType.choices, default=MediaType.IMAGES)
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

    def get_absolute_url(self) -> str:
        return reverse("project_detail", kwargs={"org_slug": self.organization.slug, "project_id": self.pk})

    def accepts(self, kind: str) -> bool:
        """Whether media of ``kind`` (``image`` or ``video``) may be added to this project."""
        return self.media_type == self.MediaType.BOTH or self.media_type == f"{kind}s"


class Label(models.Model):
    class Kind(models.TextChoices):
        MASK = "mask", "Mask"
        BOX = "box", "Box"
        CLASSIFICATION = "classification", "Classification"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=100)
    color = models.CharField(max_length=7, default="#1f77b4", validators=[hex_colour])
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.MASK)
    order = models.PositiveIntegerField(default=0, help_text="Position in the list; the first nine are keys 1…9.")
    guidelines = models.TextField(blank=True, help_text="Markdown, shown to annotators next to this label.")

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

    class State(models.TextChoices):
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="media")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.IMAGE)
    file = models.FileField(upload_to=media_upload_to, max_length=300)
    thumbnail = models.FileField(upload_to=media_upload_to, max_length=300, blank=True)
    original_name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size_bytes = models.PositiveBigIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    task = models.ForeignKey("Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="items")
    # Set when an annotator saves the item as finished (Enter in the studio); cleared on rework.
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Answers to the project's per-item questions: {question_id: choice}.
    answers = models.JSONField(default=dict, blank=True)
    # Videos: the original stays in ``file``; its frames are extracted once (annotation.video_services)
    # as JPEG files <index>.jpg under ``frames_prefix`` in the same storage. Images are always ready.
    state = models.CharField(max_length=12, choices=State.choices, default=State.READY)
    state_detail = models.TextField(blank=True, help_text="Why the frames could not be extracted.")
    frame_count = models.PositiveIntegerField(null=True, blank=True)
    fps = models.FloatField(null=True, blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    frames_prefix = models.CharField(max_length=300, blank=True)

    tenant_path = "project__organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["project", "id"]
        verbose_name = "media item"
        indexes = [models.Index(fields=["project", "done_at"], name="media_project_done")]

    def __str__(self) -> str:
        return self.original_name

    def get_absolute_url(self) -> str:
        return reverse(
            "media_detail",
            kwargs={"org_slug": self.project.organization.slug, "project_id": self.project_id, "media_id": self.pk},
        )


class Question(models.Model):
    """A single-choice question: about each object of a label, or (no label) about each item."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="questions")
    label = models.ForeignKey(Label, null=True, blank=True, on_delete=models.CASCADE, related_name="questions")
    text = models.CharField(max_length=200)
    choices = models.JSONField(default=list, help_text="The answers to choose from, in order.")
    default = models.CharField(max_length=100, blank=True, help_text="Pre-selected answer; empty for none.")
    required = models.BooleanField(default=False)
    order = models.PositiveIntegerField(default=0)

    tenant_path = "project__organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["project", "label", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "label", "text"], name="question_unique_text_per_label"),
        ]

    def __str__(self) -> str:
        return self.text

    def clean(self) -> None:
        choices = self.choices
        if not isinstance(choices, list) or not all(isinstance(c, str) and c.strip() for c in choices):
            raise ValidationError({"choices": "Give the choices as a list of non-empty texts."})
        if len(choices) < 2:
            raise ValidationError({"choices": "A question needs at least two choices."})
        if len(choices) > 50 or any(len(c) > 100 for c in choices):
            raise ValidationError({"choices": "At most 50 choices of at most 100 characters each."})
        if len({c.strip().casefold() for c in choices}) != len(choices):
            raise ValidationError({"choices": "The choices must differ from each other."})
        if self.default and self.default not in choices:
            raise ValidationError({"default": "The default must be one of the choices."})
        if self.label_id is not None and self.label.project_id != self.project_id:
            raise ValidationError({"label": "The label belongs to another project."})

    @property
    def scope(self) -> str:
        return "object" if self.label_id else "item"


class Task(models.Model):
    """A share of a project's items given to one annotator (CVAT calls these jobs)."""

    class State(models.TextChoices):
        NEW = "new", "New"
        IN_PROGRESS = "in_progress", "In progress"
        SUBMITTED = "submitted", "Submitted"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tasks")
    name = models.CharField(max_length=200)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="annotation_tasks"
    )
    state = models.CharField(max_length=20, choices=State.choices, default=State.NEW)
    # The reviewer's reason for the last rejection, shown to the annotator in their task list.
    review_note = models.CharField(max_length=1000, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    tenant_path = "project__organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["project", "id"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("task_open", kwargs={"org_slug": self.project.organization.slug, "task_id": self.pk})


class Annotation(models.Model):
    """One object's geometry on an item (or on one frame of a video), as COCO compressed RLE."""

    class Source(models.TextChoices):
        MANUAL = "manual", "Drawn by hand"
        MODEL = "model", "Model"
        IMPORT = "import", "Imported"
        CROWD = "crowd", "Crowd"

    media = models.ForeignKey(MediaItem, on_delete=models.CASCADE, related_name="annotations")
    label = models.ForeignKey(Label, on_delete=models.CASCADE, related_name="annotations")
    frame = models.PositiveIntegerField(null=True, blank=True)
    track = models.PositiveIntegerField(null=True, blank=True)
    rle = models.JSONField(default=dict, blank=True)
    bbox = models.JSONField(default=list, blank=True)
    area = models.PositiveBigIntegerField(default=0)
    drawn = models.JSONField(default=dict, blank=True, help_text="How it was drawn: polygon, box, brush strokes.")
    answers = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.MANUAL)
    source_detail = models.JSONField(default=dict, blank=True, help_text="Model key and prompts, import file.")
    # A pre-annotation a model made that no person has accepted or changed yet.
    proposed = models.BooleanField(default=False, db_index=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    z_order = models.IntegerField(default=0)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    tenant_path = "media__project__organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["media", "z_order", "id"]
        indexes = [models.Index(fields=["media", "frame"], name="annotation_media_frame")]

    def __str__(self) -> str:
        return f"{self.label} on {self.media}"


class DatasetSplit(models.Model):
    """A saved division of a project's items into train / val / test (see ``annotation.datasets.splits``)."""

    class Subset(models.TextChoices):
        TRAIN = "train", "Train"
        VAL = "val", "Validation"
        TEST = "test", "Test"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="splits")
    name = models.CharField(max_length=100)
    seed = models.PositiveBigIntegerField(default=0)
    ratios = models.JSONField(default=dict, help_text="{subset: share of the items}, adding up to 1.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "project__organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["project", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="dataset_split_unique_name_per_project"),
        ]

    def __str__(self) -> str:
        return self.name


class DatasetSplitItem(models.Model):
    """Which subset of a split one item is in."""

    split = models.ForeignKey(DatasetSplit, on_delete=models.CASCADE, related_name="items")
    media = models.ForeignKey(MediaItem, on_delete=models.CASCADE, related_name="split_memberships")
    subset = models.CharField(max_length=5, choices=DatasetSplit.Subset.choices)

    tenant_path = "split__project__organization"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["split", "media"]
        constraints = [
            models.UniqueConstraint(fields=["split", "media"], name="dataset_split_item_unique_media"),
        ]
        indexes = [models.Index(fields=["split", "subset"], name="dataset_split_item_subset")]

    def __str__(self) -> str:
        return f"{self.media} in {self.split} ({self.subset})"
