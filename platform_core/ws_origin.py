"""Websocket Origin check: same origin (scheme, host and port) as the socket, or a listed origin.

Channels' AllowedHostsOriginValidator compares the host name only (any port, any scheme) and turns
itself off with ALLOWED_HOSTS=*; a page on another port of the same host is another origin, and so
is the http:// page of an https:// site, as Django's CSRF check has it.

The socket's scheme: daphne puts no "scheme" in a websocket scope (ASGI then means "ws"), even for
a TLS listener or with --proxy-headers; other servers set "ws" or "wss". Behind a TLS proxy
(BEHIND_TLS_PROXY=1) the proxy's header, SECURE_PROXY_SSL_HEADER, decides as it does for
`request.is_secure()`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host


def scope_is_secure(scope: dict) -> bool:
    """Whether the socket came in over TLS: the proxy's header when one is trusted and present,
    else the scope's scheme."""
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        meta_name, secure_value = proxy_header
        # HTTP_X_FORWARDED_PROTO -> x-forwarded-proto
        header_name = meta_name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin1")
        for name, value in scope.get("headers", []):
            if name.lower() == header_name:
                # Django reads the first value of a comma-separated list the same way.
                return value.decode("latin1").split(",", 1)[0].strip() == secure_value
    return scope.get("scheme", "ws") in ("wss", "https")


def origin_allowed(origin: str, host: str, *, secure: bool) -> bool:
    if not origin or not host:
        return False
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    parsed = urlsplit(origin)
    if parsed.scheme != ("https" if secure else "http"):
        return False
    domain, _ = split_domain_port(host)
    allowed_hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
    return parsed.netloc.lower() == host.lower() and validate_host(domain, allowed_hosts)


class SameOriginValidator:
    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            headers = dict(scope.get("headers", []))
            origin = headers.get(b"origin", b"").decode("latin1")
            host = headers.get(b"host", b"").decode("latin1")
            if not origin_allowed(origin, host, secure=scope_is_secure(scope)):
                return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
