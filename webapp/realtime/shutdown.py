"""Open streams end as soon as the server starts shutting down.

uvicorn waits for open connections to finish before it runs the app's shutdown, and a stream
never finishes by itself, so every stop would wait out the grace period and then cancel the
streams. Telling the streams to close when the stop signal arrives lets them end cleanly; the
clients reconnect (to another process, or to this one once it is back) and resume by seq.
"""

from __future__ import annotations

import asyncio
import logging
from types import FrameType
from typing import Any

import uvicorn
from litestar import Litestar

from webapp.realtime.doorbell import CLOSE


class StreamClosingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Litestar) -> None:
        super().__init__(config)
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: Any = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if sockets and self.started:  # uvicorn names the address only of sockets it bound itself
            host, port = sockets[0].getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            logging.getLogger("uvicorn.error").info("Tidings running on http://%s:%d (Ctrl+C to quit)", shown, port)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        doorbell = getattr(self.app.state, "doorbell", None)
        if doorbell is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(doorbell.hub.broadcast, CLOSE)
        super().handle_exit(sig, frame)
