"""The annotation app's job runners, registered on import (the jobs core imports each app's
``jobs`` module the first time a worker meets a kind it does not know)."""

from __future__ import annotations

from annotation import (
    media_import,  # noqa: F401 - registers "import_media"
    video_services,  # noqa: F401 - registers "extract_video_frames"
)
from annotation.datasets import (
    export_job,  # noqa: F401 - registers "export_dataset"
    import_job,  # noqa: F401 - registers "import_dataset"
    merge,  # noqa: F401 - registers "merge_datasets"
)
