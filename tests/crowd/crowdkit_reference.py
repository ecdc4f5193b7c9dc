"""crowd-kit's reference aggregators, loaded without the rest of crowd-kit.

``import crowdkit.aggregation`` runs that package's ``__init__``, which imports every aggregator
crowd-kit has and with them nltk and scikit-learn. requirements-test.txt installs crowd-kit without
its dependencies, with only what DawidSkene, MajorityVote and SegmentationMajorityVote import
(pandas, attrs, numpy). So the two package ``__init__`` files on the way are stood in for by empty
packages with the same path, and the aggregator modules are imported from there: the code that runs
is crowd-kit's own, unchanged.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

_PACKAGES = (
    "crowdkit.aggregation",
    "crowdkit.aggregation.classification",
    "crowdkit.aggregation.image_segmentation",
)


def _stand_in_packages() -> None:
    spec = importlib.util.find_spec("crowdkit")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("crowd-kit is not installed: run `make test-deps` (see requirements-test.txt).")
    root = Path(next(iter(spec.submodule_search_locations)))
    for name in _PACKAGES:
        if name in sys.modules:
            continue
        package = types.ModuleType(name)
        package.__path__ = [str(root.joinpath(*name.split(".")[1:]))]
        sys.modules[name] = package


def crowdkit_module(name: str) -> Any:
    """``crowdkit.aggregation.<name>``, e.g. ``classification.dawid_skene``."""
    _stand_in_packages()
    return importlib.import_module(f"crowdkit.aggregation.{name}")
