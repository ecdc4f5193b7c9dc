"""Annotations: the objects drawn on an item, their writes (versioned, published after commit),
their reads and their JSON form, shared by the REST API and the studio socket."""
