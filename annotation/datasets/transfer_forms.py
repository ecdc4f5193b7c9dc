"""The forms of the dataset import, merge and split pages: parsing only; the services say what is
wrong with the values."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet

from annotation.models import Project


class ImportForm(forms.Form):
    file = forms.FileField(label="COCO file (.json), or a zip of images with one COCO file")
    create_labels = forms.BooleanField(required=False, label="Create labels for categories the project lacks")
    as_accepted = forms.BooleanField(
        required=False, label="Import as accepted objects (not as pre-annotations awaiting review)"
    )


class MergeForm(forms.Form):
    sources = forms.ModelMultipleChoiceField(
        queryset=Project.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        label="Projects to copy into this one",
    )
    create_labels = forms.BooleanField(
        required=False, initial=True, label="Create labels (and their questions) this project lacks"
    )

    def __init__(self, *args: Any, projects: QuerySet[Project], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["sources"].queryset = projects


class SplitForm(forms.Form):
    name = forms.CharField(max_length=100, initial="v1")
    ratios = forms.CharField(
        max_length=100, initial="0.8,0.1,0.1", help_text="Shares of train, val and test, adding up to 1."
    )
    seed = forms.IntegerField(min_value=0, initial=0, help_text="The same seed gives the same split.")
