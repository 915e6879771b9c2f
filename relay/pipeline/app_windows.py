"""Conversion windows of app events, from the account's app event tags.

X's app event tags say, per (app, os, conversion type), how many days after a click
(`post_engagement_attribution_window`) or a view (`post_view_attribution_window`) a
conversion is attributed. The deliver stage sends them as `click_window` and
`view_through_window` unless the input gave them; X's defaults (14 / 1) otherwise.

Tags are read per account through `relay.xads` (every page), cached, and refreshed in the
background; the hot path only looks up a dict. The first conversion of an account waits for
its first read (bounded: on failure the defaults apply and the read is tried again later).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final

from relay.xads.client import XAdsClient
from relay.xads.errors import ApiError

log = logging.getLogger(__name__)

DEFAULT_CLICK_WINDOW: Final = 14
DEFAULT_VIEW_THROUGH_WINDOW: Final = 1
FIRST_READ_TIMEOUT_S: Final = 10.0
RETRY_FAILED_READ_S: Final = 30.0

Windows = tuple[int, int]  # (click_window, view_through_window)
TagKey = tuple[str, str, str]  # (app id, os type, conversion type)


def fill_windows(params: MutableMapping[str, Any], tag: Windows | None) -> None:
    """Fill the windows the input left out, then keep click_window >= view_through_window
    (X refuses the request otherwise; the view window is the one cut down)."""
    click, view = tag or (DEFAULT_CLICK_WINDOW, DEFAULT_VIEW_THROUGH_WINDOW)
    params.setdefault("click_window", click)
    params.setdefault("view_through_window", view)
    if int(params["view_through_window"]) > int(params["click_window"]):
        params["view_through_window"] = int(params["click_window"])


@dataclass
class _Account:
    windows: dict[TagKey, Windows] = field(default_factory=dict)
    loaded: asyncio.Event = field(default_factory=asyncio.Event)
    read_at: float = 0.0
    task: asyncio.Task[None] | None = None


class AppWindows:
    """The tag windows of the accounts this worker delivers for."""

    def __init__(
        self,
        client_for: Callable[[str], XAdsClient],
        refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._client_for = client_for
        self.refresh_s = refresh_s
        self._clock = clock
        self._accounts: dict[str, _Account] = {}

    def lookup(
        self, account: str, app_id: str, os_type: str, conversion_type: str
    ) -> Windows | None:
        entry = self._accounts.get(account)
        return entry.windows.get((app_id, os_type, conversion_type)) if entry else None

    async def ready(self, account: str) -> None:
        """Wait (bounded) for the account's first read; start a refresh when one is due."""
        entry = self._accounts.get(account)
        if entry is None:
            entry = self._accounts[account] = _Account()
        if entry.task is None and self._clock() >= entry.read_at:
            entry.task = asyncio.create_task(self._read(account, entry), name="app-event-tags")
        if not entry.loaded.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.loaded.wait(), FIRST_READ_TIMEOUT_S)

    async def _read(self, account: str, entry: _Account) -> None:
        windows: dict[TagKey, Windows] = {}
        try:
            async for tag in self._client_for(account).app_event_tags.iterate(account, count=1000):
                if tag.get("deleted"):
                    continue
                key = (str(tag["app_store_identifier"]), tag["os_type"], tag["conversion_type"])
                windows.setdefault(
                    key,
                    (
                        int(tag["post_engagement_attribution_window"]),
                        int(tag["post_view_attribution_window"]),
                    ),
                )
            entry.windows = windows
            entry.read_at = self._clock() + self.refresh_s
            log.info("app event tags of an account read: %d tags", len(windows))
        except (ApiError, KeyError, TypeError, ValueError) as exc:
            # No tags readable (no right to read them, X down): X's defaults, a later retry.
            entry.read_at = self._clock() + min(RETRY_FAILED_READ_S, self.refresh_s)
            log.warning("app event tags not readable (%s); X's default windows apply", exc)
        finally:
            entry.loaded.set()
            entry.task = None

    async def close(self) -> None:
        tasks = [e.task for e in self._accounts.values() if e.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
