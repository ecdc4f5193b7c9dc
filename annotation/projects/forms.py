"""Input forms of the project, label and question pages (parsing only: the services validate)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms

from annotation.models import Label, Project


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    media_type = forms.ChoiceField(choices=Project.MediaType.choices, initial=Project.MediaType.IMAGES)


class ProjectDeleteForm(forms.Form):
    confirm_name = forms.CharField(required=False, label="Type the project's name to confirm")


class LabelForm(forms.Form):
    name = forms.CharField(max_length=100)
    color = forms.RegexField(
        regex=r"^#[0-9a-fA-F]{6}$",
        initial="#1f77b4",
        error_messages={"invalid": "Use a colour like #1f77b4."},
    )
    kind = forms.ChoiceField(choices=Label.Kind.choices, initial=Label.Kind.MASK)
    guidelines = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class QuestionForm(forms.Form):
    text = forms.CharField(max_length=200, label="Question")
    choices = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One answer a line.",
    )
    default = forms.CharField(max_length=100, required=False, help_text="Optional; one of the answers.")
    required = forms.BooleanField(required=False)


class PreannotateForm(forms.Form):
    """Parsing only: ``inference.preannotation.preannotation_start`` checks the model, the labels
    against the project and the items, and says what is wrong."""

    model = forms.ChoiceField(help_text="The fallback works with the boxes method only.")
    method = forms.ChoiceField()
    label = forms.TypedChoiceField(coerce=int, label="New masks go to")
    source_label = forms.TypedChoiceField(
        coerce=int, required=False, empty_value=None, label="Boxes from", help_text="For the boxes method."
    )
    replace = forms.BooleanField(
        required=False,
        label="Replace earlier pre-annotations",
        help_text="Without it, items that hold proposed objects of the same method on that label are skipped.",
    )
    points_per_side = forms.IntegerField(required=False)
    pred_iou_thresh = forms.FloatField(required=False, label="Predicted quality at least")
    stability_score_thresh = forms.FloatField(required=False, label="Stability at least")
    box_nms_thresh = forms.FloatField(required=False, label="Duplicate overlap")
    min_mask_region_area = forms.IntegerField(required=False, label="Remove specks under (pixels)")
    max_objects = forms.IntegerField(required=False, label="At most objects per item")

    OPTION_FIELDS = (
        "points_per_side",
        "pred_iou_thresh",
        "stability_score_thresh",
        "box_nms_thresh",
        "min_mask_region_area",
        "max_objects",
    )

    def __init__(self, *args: Any, labels: Iterable[Label] = (), **kwargs: Any) -> None:
        from inference import preannotation

        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [
            (choice["key"], choice["name"] + (" (untrained weights)" if choice["untrained"] else ""))
            for choice in preannotation.model_choices()
        ]
        self.fields["method"].choices = list(preannotation.METHODS.items())
        labels = list(labels)
        self.fields["label"].choices = [(label.pk, label.name) for label in labels if label.kind == Label.Kind.MASK]
        self.fields["source_label"].choices = [("", "—")] + [
            (label.pk, label.name) for label in labels if label.kind != Label.Kind.CLASSIFICATION
        ]
        for name in self.OPTION_FIELDS:
            option = preannotation.OPTIONS[name]
            field = self.fields[name]
            field.initial = option.default
            field.help_text = option.help
            field.widget.attrs.update(min=option.minimum, max=option.maximum)
            if option.kind is float:
                field.widget.attrs["step"] = "0.01"

    def options(self) -> dict[str, Any]:
        """The generator settings given (empty ones take their defaults)."""
        return {name: self.cleaned_data[name] for name in self.OPTION_FIELDS if self.cleaned_data[name] is not None}
