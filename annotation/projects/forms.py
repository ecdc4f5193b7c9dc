"""Input forms of the project, label and question pages (parsing only: the services validate)."""

from __future__ import annotations

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
