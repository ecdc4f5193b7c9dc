"""The project page's export form: parsing only; ``ExportOptions.parse`` and the export's own
check say what is wrong."""

from __future__ import annotations

from django import forms

from annotation.datasets.options import ACCEPTED, ALL, FORMATS, SUBSETS, ExportOptions


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=list(FORMATS.items()))
    polygons = forms.BooleanField(required=False, label="Polygons instead of RLE (COCO)")
    include_images = forms.BooleanField(required=False, label="Include the images (zip)")
    only_accepted = forms.BooleanField(required=False, label="Only items of accepted tasks")
    include_proposed = forms.BooleanField(required=False, label="Include pre-annotations awaiting review")
    # Sent by the splits page's export buttons: one subset of a saved split.
    split = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    subset = forms.ChoiceField(required=False, choices=[("", "")] + [(s, s) for s in SUBSETS], widget=forms.HiddenInput)

    def options(self) -> ExportOptions:
        data = self.cleaned_data
        return ExportOptions.parse(
            {
                "format": data["format"],
                "polygons": data["polygons"],
                "include_images": data["include_images"],
                "only": ACCEPTED if data["only_accepted"] else ALL,
                "include_proposed": data["include_proposed"],
                "split": data.get("split"),
                "subset": data.get("subset") or None,
            }
        )
