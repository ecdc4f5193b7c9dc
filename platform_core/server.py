"""``python -m platform_core.server``: daphne, with websocket limits that leave the refusal to us.

Daphne (autobahn underneath) drops the TCP connection when a websocket frame or message is larger
than its own limits, 1 MiB by default, before the application sees it: a page would lose its socket
(and whatever it had in flight) instead of hearing why. This starts daphne's own command line with
both limits raised well above ``settings.WS_MAX_MESSAGE_BYTES`` (``server_message_limit``), so a
message between the two reaches the consumer, which answers with a ``too_large`` error frame and
keeps the socket open. Daphne still buffers at most that much per message, and only on sockets the
application accepted (signed-in members). Every daphne option works as usual; explicit
``--websocket-max-message-size`` / ``--websocket-max-frame-size`` options win.

    python -m platform_core.server -b 127.0.0.1 -p 8000 platform_core.asgi:application
"""

from __future__ import annotations

import os

from daphne.cli import CommandLineInterface

MIN_SERVER_LIMIT = 16 * 1024 * 1024


def server_message_limit(app_limit: int) -> int:
    """Daphne's frame and message limit for an application limit of ``app_limit`` bytes."""
    return max(MIN_SERVER_LIMIT, 16 * app_limit)


class PlatformCommandLine(CommandLineInterface):
    def __init__(self) -> None:
        super().__init__()
        from django.conf import settings

        limit = server_message_limit(settings.WS_MAX_MESSAGE_BYTES)
        self.parser.set_defaults(websocket_max_message_size=limit, websocket_max_frame_size=limit)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform_core.settings")
    PlatformCommandLine.entrypoint()


if __name__ == "__main__":
    main()
