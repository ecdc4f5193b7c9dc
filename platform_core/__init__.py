"""Settings, URLs, ASGI routing, organisations, memberships, roles and tenant scoping."""
