"""Saved splits of a project's items into train / val / test, by ratios and a seed, stratified by
category; exports can take one subset of a split (``ExportOptions.split`` / ``subset``).

Stratified: each item is put in the stratum of its most frequent label (objects awaiting a person
not counted; a tie goes to the label first in the project's order), items without objects in a
stratum of their own. Each stratum is shuffled with the seed and cut by the ratios, so every label
is spread over the subsets in the same proportions as the whole. Cutting rounds down; the items
left over go, one each, to the subsets furthest below their share of everything assigned so far,
so each subset's size is within one item of its share overall and in every stratum.

Deterministic: the same items, objects, ratios and seed give the same split (strata in label id
order, items sorted by id before the seeded shuffle). A split is a snapshot: items added to the
project later are in none of its subsets.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q, QuerySet

from annotation.models import Annotation, DatasetSplit, DatasetSplitItem, MediaItem, Project
from platform_core.tenancy import Tenant, get_for_org_or_404

SUBSETS = tuple(DatasetSplit.Subset.values)  # train, val, test
MAX_SEED = 2**63 - 1
RATIO_TOLERANCE = 1e-6
BATCH = 1000


# --- input -----------------------------------------------------------------------------------------


def parse_ratios(value: Any) -> dict[str, float]:
    """``{"train": …, "val": …, "test": …}`` from ``"0.8,0.1,0.1"``, a list of three numbers or such
    a mapping; each between 0 and 1, adding up to 1. ValidationError on ``ratios`` otherwise."""
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",")]
        try:
            numbers: list[Any] = [float(part) for part in parts]
        except ValueError:
            raise ValidationError({"ratios": "Give three numbers for train, val and test, e.g. 0.8,0.1,0.1."}) from None
    elif isinstance(value, list | tuple):
        numbers = list(value)
    elif isinstance(value, Mapping):
        unknown = set(value) - set(SUBSETS)
        if unknown:
            raise ValidationError(
                {"ratios": f"Unknown subsets {', '.join(sorted(map(str, unknown)))}: use train, val, test."}
            )
        numbers = [value.get(subset, 0) for subset in SUBSETS]
    else:
        raise ValidationError({"ratios": "Give three numbers for train, val and test, e.g. 0.8,0.1,0.1."})
    if len(numbers) != len(SUBSETS):
        raise ValidationError({"ratios": f"Give three numbers (train, val, test), not {len(numbers)}."})
    if not all(isinstance(n, int | float) and not isinstance(n, bool) and math.isfinite(n) for n in numbers):
        raise ValidationError({"ratios": "The ratios must be numbers."})
    if any(n < 0 or n > 1 for n in numbers):
        raise ValidationError({"ratios": "Each ratio is between 0 and 1."})
    total = sum(numbers)
    if abs(total - 1) > RATIO_TOLERANCE:
        raise ValidationError({"ratios": f"The ratios add up to {total:g}; they must add up to 1."})
    return {subset: float(n) for subset, n in zip(SUBSETS, numbers, strict=True)}


def parse_seed(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise ValidationError({"seed": f"The seed is a whole number from 0 to {MAX_SEED}."})
    return value


# --- the split ---------------------------------------------------------------------------------------


def item_strata(project: Project) -> dict[int, int | None]:
    """Each item's stratum: the id of its most frequent label (ties: the label first in the
    project's order), None for an item without objects."""
    rank = {
        pk: index
        for index, pk in enumerate(project.labels.order_by("order", "name", "id").values_list("pk", flat=True))
    }
    strata: dict[int, int | None] = dict.fromkeys(
        MediaItem.objects.filter(project=project).values_list("pk", flat=True)
    )
    best: dict[int, tuple[int, int]] = {}
    counts = (
        Annotation.objects.filter(media__project=project, proposed=False)
        .values("media_id", "label_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in counts:
        key = (-row["n"], rank.get(row["label_id"], len(rank)))
        if row["media_id"] not in best or key < best[row["media_id"]]:
            best[row["media_id"]] = key
            strata[row["media_id"]] = row["label_id"]
    return strata


def split_assign(strata: Mapping[int, Any], ratios: Mapping[str, float], seed: int) -> dict[int, str]:
    """``{item id: subset}`` for items grouped in ``strata`` ({item id: stratum}), cut by ``ratios``
    within each stratum after a shuffle seeded with ``seed`` (see the module's docstring)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible shuffle, not a secret
    groups: dict[Any, list[int]] = defaultdict(list)
    for item_id, stratum in strata.items():
        groups[stratum].append(item_id)
    assigned: Counter[str] = Counter()
    done = 0
    subsets: dict[int, str] = {}
    takers = [subset for subset in SUBSETS if ratios.get(subset, 0) > 0]
    for stratum in sorted(groups, key=lambda key: (key is None, key if key is not None else 0)):
        ids = sorted(groups[stratum])
        rng.shuffle(ids)
        size = len(ids)
        counts = {subset: math.floor(size * ratios.get(subset, 0) + RATIO_TOLERANCE) for subset in SUBSETS}
        left = size - sum(counts.values())
        done += size

        # How far each subset is below its share of everything assigned once this stratum is in.
        below = {subset: done * ratios[subset] - (assigned[subset] + counts[subset]) for subset in takers}
        ranked = sorted(takers, key=lambda subset: (-below[subset], SUBSETS.index(subset)))
        for index in range(max(left, 0)):
            counts[ranked[index % len(ranked)]] += 1
        start = 0
        for subset in SUBSETS:
            for item_id in ids[start : start + counts[subset]]:
                subsets[item_id] = subset
            start += counts[subset]
            assigned[subset] += counts[subset]
    return subsets


def dataset_split_create(*, project: Project, name: Any, ratios: Any, seed: Any = 0, actor: Any = None) -> DatasetSplit:
    """Split ``project``'s items (fetched through the tenancy door by the caller) and save the split
    as ``name``. ValidationError per field (``name``, ``ratios``, ``seed``) or for a project without
    items."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError({"name": "Give the split a name, e.g. v1."})
    name = name.strip()
    if len(name) > 100:
        raise ValidationError({"name": "A split's name has at most 100 characters."})
    ratios = parse_ratios(ratios)
    seed = parse_seed(seed)
    with transaction.atomic():
        if project.splits.filter(name=name).exists():
            raise ValidationError({"name": f"The project already has a split named “{name}”: choose another name."})
        strata = item_strata(project)
        if not strata:
            raise ValidationError("The project has no items to split yet.", code="empty")
        split = DatasetSplit(project=project, name=name, seed=seed, ratios=ratios, created_by=actor)
        split.full_clean()
        split.save()
        subsets = split_assign(strata, ratios, seed)
        rows = [DatasetSplitItem(split=split, media_id=item_id, subset=subset) for item_id, subset in subsets.items()]
        DatasetSplitItem.objects.bulk_create(rows, batch_size=BATCH)
    return split


# --- reads ---------------------------------------------------------------------------------------------


def split_list(project: Project) -> QuerySet[DatasetSplit]:
    """The project's splits, newest first, each with ``train`` / ``val`` / ``test`` counts."""
    counts = {subset: Count("items", filter=Q(items__subset=subset)) for subset in SUBSETS}
    return project.splits.annotate(**counts).order_by("-created_at", "-id")


def split_get(tenant: Tenant, project: Project, split_id: int) -> DatasetSplit:
    return get_for_org_or_404(DatasetSplit.objects.filter(project=project), tenant.org, pk=split_id)


def split_counts(split: DatasetSplit) -> dict[str, int]:
    counts = dict.fromkeys(SUBSETS, 0)
    for row in split.items.values("subset").annotate(n=Count("id")).order_by():
        counts[row["subset"]] = row["n"]
    return counts
