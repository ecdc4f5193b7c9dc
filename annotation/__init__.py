"""Projects, labels, media, tasks, annotations, studio pages, import/export, statistics."""
