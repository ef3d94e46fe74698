"""Call the async broker interface from synchronous code (services, Celery tasks, commands)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def call(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion: in this thread when no event loop runs here, else in a
    helper thread with its own loop (never blocks a running loop's thread on itself)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
