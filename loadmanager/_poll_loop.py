"""Polls in flight on one thread: their sockets watched by one selector.

The Monitor used to give each poll a thread from a pool, and a poll's CPU was
mostly those threads handing the work and the GIL to each other (7.6 to 11
context switches a poll, docs/performance.md). Here the Monitor's own thread
sends every due poll on its master's kept-alive connection, and waits on all
their sockets at once; an answer is read when it arrives, and none waits on a
thread. What cannot go this way (a failed answer, a master without kept-alive
reads) goes to the pool, as before.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from .lifecycle import InFlightPoll
from .locust.stats import MasterPoll

__all__ = ["PollLoop"]

log = logging.getLogger("loadmanager")

T = TypeVar("T")


class PollLoop(Generic[T]):
    """Sent polls, each with what the caller needs to handle its answer (``T``).

    Only the thread that calls :meth:`wait` may call :meth:`add` and
    :meth:`close`; :meth:`wake` may be called from any thread.

    Args:
        monotonic: The clock the answers' deadlines are read on.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._selector = selectors.DefaultSelector()
        self._waker, self._woken = socket.socketpair()
        self._waker.setblocking(False)
        self._woken.setblocking(False)
        self._selector.register(self._woken, selectors.EVENT_READ, None)
        self._sent: dict[int, tuple[InFlightPoll, T, float]] = {}
        self._next_deadline = float("inf")
        self._wake_lock = threading.Lock()
        self._closed = False

    def __len__(self) -> int:
        return len(self._sent)

    def add(self, sent: InFlightPoll, item: T) -> None:
        """Wait for ``sent``'s answer, up to its timeout from now.

        Raises:
            ValueError, OSError: the selector refuses the socket (closed, or
                waited on already); nothing was added.
        """
        fd = sent.sock.fileno()
        deadline = self._monotonic() + sent.timeout
        self._selector.register(fd, selectors.EVENT_READ, fd)  # first: it may refuse
        self._sent[fd] = (sent, item, deadline)
        self._next_deadline = min(self._next_deadline, deadline)

    def wait(self, timeout: float) -> list[tuple[T, MasterPoll | None]]:
        """The polls that ended within ``timeout`` seconds (or since :meth:`wake`).

        Each with its poll, or ``None`` when the answer failed or did not come
        in its time (the caller then polls the usual way).
        """
        ended: list[tuple[T, MasterPoll | None]] = []
        for key, _ in self._selector.select(max(0.0, timeout)):
            if key.data is None:
                self._drain()
                continue
            sent, item, _ = self._sent[key.data]
            try:
                over = sent.receive()
                polled = sent.result() if over else None
            except Exception:  # a bug must not end the loop: the usual poll goes on
                log.exception("reading a poll's answer failed")
                sent.cancel()
                over, polled = True, None
            if over:
                self._selector.unregister(key.fd)
                del self._sent[key.data]
                ended.append((item, polled))
        now = self._monotonic()
        if now >= self._next_deadline:
            self._next_deadline = float("inf")
            for fd, (sent, item, deadline) in list(self._sent.items()):
                if deadline <= now:
                    self._selector.unregister(fd)
                    del self._sent[fd]
                    sent.cancel()
                    ended.append((item, None))
                else:
                    self._next_deadline = min(self._next_deadline, deadline)
        return ended

    def wake(self) -> None:
        """End a :meth:`wait` in progress at once (from any thread)."""
        with self._wake_lock:
            if self._closed:
                return
            with contextlib.suppress(BlockingIOError):  # full: a wake is pending already
                self._waker.send(b"\0")

    def _drain(self) -> None:
        try:
            while self._woken.recv(4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> list[T]:
        """Give up every poll in flight (their connections closed); returns their items."""
        items = []
        for fd, (sent, item, _) in self._sent.items():
            self._selector.unregister(fd)
            sent.cancel()
            items.append(item)
        self._sent.clear()
        with self._wake_lock:
            self._closed = True
            self._selector.close()
            self._waker.close()
            self._woken.close()
        return items
