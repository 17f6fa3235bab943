"""Worker threads for calls whose results nobody waits for: the Monitor's polls.

``ThreadPoolExecutor`` builds a Future for every call, and a Future's
Condition probes its lock's methods by raising and catching AttributeError
three times: at N = 1,000 monitored runs that was an eighth of the Monitor's
Python time (py-spy ``--gil``, docs/performance.md), for a result the Monitor
never reads (a poll reports through the storage and logs its own failures).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Workers"]

log = logging.getLogger("loadmanager")


class Workers:
    """``count`` daemon threads running submitted calls in the order they came.

    The threads start with the first call, as ``ThreadPoolExecutor``'s do.
    :meth:`shutdown` lets the calls already queued run, then ends the threads;
    a call submitted after it raises RuntimeError, as the executor's does.

    Args:
        count: How many calls run at once.
        name: The threads' name prefix.
    """

    def __init__(self, count: int, name: str) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        self._count, self._name = count, name
        self._tasks: queue.SimpleQueue[tuple[Callable[..., object], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`shutdown` was called."""
        return self._closed

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on a worker; what it returns or raises is not kept.

        Raises:
            RuntimeError: after :meth:`shutdown`.
        """
        # Under the lock so a call cannot slip in behind shutdown's sentinels
        # and wait forever in the queue.
        with self._lock:
            if self._closed:
                raise RuntimeError("these workers were shut down")
            if not self._threads:
                self._threads = [
                    threading.Thread(target=self._work, name=f"{self._name}_{i}", daemon=True)
                    for i in range(self._count)
                ]
                for thread in self._threads:
                    thread.start()
            self._tasks.put((fn, args))

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            fn, args = task
            try:
                fn(*args)
            except BaseException:  # a worker outlives any one call
                log.exception("a call on %s failed", threading.current_thread().name)

    def shutdown(self) -> None:
        """Run the calls already queued, then end the threads and wait for them."""
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, []
        for _ in threads:
            self._tasks.put(None)
        for thread in threads:
            thread.join()
