"""Input forms of the task pages."""

from __future__ import annotations

from django import forms

from annotation.tasks.services import MAX_TASK_SIZE


class SplitForm(forms.Form):
    size = forms.IntegerField(min_value=1, max_value=MAX_TASK_SIZE, initial=50, label="Items per task")
    assignees = forms.MultipleChoiceField(
        required=False, label="Assign round robin to", widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, members=(), **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003 - Django's signature
        super().__init__(*args, **kwargs)
        self.fields["assignees"].choices = [(str(m.user_id), m.user.get_username()) for m in members]
