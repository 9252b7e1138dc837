"""Hears tenant changes (app/tenant_events.py) and tells the authenticator to forget that tenant.

One PostgreSQL connection per API process, in LISTEN mode, pinged every PING_SECONDS. The
authenticator trusts its caches only while `live()`: a listener that has not heard from the server for
STALE_AFTER_SECONDS may have missed a notification, so the caches fall back to short ages until it is
back (tenant_auth.REVOCATION_BOUND_SECONDS). After every (re)connect everything is forgotten once: what
was sent while nobody listened is lost by design of NOTIFY.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from app.log import get_logger
from app.metrics import TENANT_INVALIDATIONS, TENANT_LISTENER_CONNECTED
from app.tenant_events import CHANNEL

log = get_logger(__name__)

PING_SECONDS = 0.5
# Two pings missed: the connection may be gone without the kernel having said so yet.
STALE_AFTER_SECONDS = 1.0
# A reconnect is tried this often while the database is unreachable.
RETRY_SECONDS = 1.0


class TenantChangeListener:
    def __init__(
        self,
        connect_kwargs: Callable[[], dict[str, Any]],
        *,
        forget: Callable[[str], None],
        forget_all: Callable[[], None],
    ) -> None:
        self._connect_kwargs = connect_kwargs
        self._forget = forget
        self._forget_all = forget_all
        self._last_contact = float("-inf")
        self._task: asyncio.Task[None] | None = None

    def live(self) -> bool:
        """True while a notification sent now would reach this process."""
        return time.monotonic() - self._last_contact <= STALE_AFTER_SECONDS

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tenant-change-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        TENANT_LISTENER_CONNECTED.set(0)

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError, TimeoutError) as error:
                log.warning("tenant change listener disconnected", error=type(error).__name__)
            TENANT_LISTENER_CONNECTED.set(0)
            await asyncio.sleep(RETRY_SECONDS)

    async def _listen(self) -> None:
        connection = await psycopg.AsyncConnection.connect(**self._connect_kwargs(), autocommit=True)
        async with connection:
            await connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
            # Listening from here on; whatever changed before is covered by forgetting it all.
            self._forget_all()
            self._touch()
            TENANT_LISTENER_CONNECTED.set(1)
            log.info("tenant change listener connected")
            while True:
                async for notification in connection.notifies(timeout=PING_SECONDS):
                    TENANT_INVALIDATIONS.inc()
                    self._forget(notification.payload)
                # Proves the connection is alive; a hung one fails the wait and is replaced.
                await asyncio.wait_for(connection.execute("SELECT 1"), timeout=STALE_AFTER_SECONDS)
                self._touch()

    def _touch(self) -> None:
        self._last_contact = time.monotonic()
