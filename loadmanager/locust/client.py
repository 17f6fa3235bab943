"""LocustClient: a typed, retrying client for a Locust 2.x master's web API.

Routes used: ``POST /swarm``, ``POST /stop``, ``POST /stats/reset``,
``GET /stats/requests`` (cached by the master for 2 s, so polling faster gains
nothing), ``GET /loadmanager/v1/figures`` (loadmanager's plugin, when the master
loaded it), ``GET /stats/requests/csv``, ``GET /stats/failures/csv``,
``GET /exceptions``, ``GET /stats/report`` and ``GET /worker-count``.

Retries: reads, ``/stop`` and ``/stats/reset`` are idempotent and retried on
transport errors and 5xx answers; ``/swarm`` is retried only when the connection
was never made, because a swarm the master received but did not answer may have
started, and starting it twice would restart the ramp-up. 4xx is never retried.

Transport: the POSTs go through httpx. The GETs do too for HTTPS, a custom
``httpx.Auth``, a proxy from the environment or an injected ``client``;
otherwise they go over kept-alive ``http.client`` connections, five times
cheaper per request, which is what lets one process poll thousands of masters
(see ``_keepalive.py``). Errors and retries are the same on both paths.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import tenacity

from .._retries import with_retries
from ..errors import (
    LocustConnectionError,
    LocustHTTPError,
    LocustResponseError,
    LocustTimeoutError,
)
from ..metrics import EndpointSummary
from . import _wire
from ._keepalive import KeptAliveGets, SentGet, plain_http_target
from ._keepalive import NotConnectedError as _NotConnectedError
from .stats import (
    LocustErrorRow,
    LocustExceptionRow,
    LocustStats,
    MasterFigures,
    MasterPoll,
    SwarmResult,
)

PLUGIN_ROUTE = "/loadmanager/v1/figures"
"""The route loadmanager's Locust plugin adds to the master's web UI."""

__all__ = ["LocustClient", "SentPoll", "default_retrying"]


def default_retrying() -> tenacity.Retrying:
    """Jittered exponential backoff, at most 5 attempts within 30 s."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(5) | tenacity.stop_after_delay(30),
        wait=tenacity.wait_random_exponential(multiplier=0.25, max=5),
        reraise=True,
    )


def _idempotent_retry(exc: BaseException) -> bool:
    if isinstance(exc, LocustHTTPError):
        return exc.status_code >= 500
    return isinstance(exc, LocustConnectionError)


def _swarm_retry(exc: BaseException) -> bool:
    return isinstance(exc, _NotConnectedError)


class LocustClient:
    """Drives one Locust master.

    Args:
        base_url: The master's web UI address, with an optional base path
            (``http://master:8089`` or ``https://lb.example.com/locust``).
        auth: Any httpx auth (``("user", "pass")``, an ``httpx.Auth``...).
        headers: Extra headers on every request (a bearer token, say).
        verify: TLS verification, as httpx takes it (bool, path or SSLContext).
        timeout: Seconds for each request (connect, read, write, pool).
        retrying: Factory of the ``tenacity.Retrying`` policy; tests pass one that
            records its sleeps instead of sleeping.
        client: An ``httpx.Client`` to use instead of building one (its
            ``base_url`` is used as given). It is not closed by :meth:`close`.

    Raises:
        ValueError: a header holds CR or LF (it would split a request).

    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        verify: Any = True,
        timeout: float = 10.0,
        retrying: Callable[[], tenacity.Retrying] = default_retrying,
        client: httpx.Client | None = None,
    ) -> None:
        for name, value in (headers or {}).items():
            if any(c in f"{name}{value}" for c in "\r\n"):
                raise ValueError(f"the header {name!r} holds CR or LF, which would split a request")
        self.base_url = base_url.rstrip("/")
        self._retrying = retrying
        self._owns_client = client is None
        self._http = client or httpx.Client(
            base_url=self.base_url + "/",
            auth=auth,
            headers=dict(headers or {}),
            verify=verify,
            timeout=httpx.Timeout(timeout),
        )
        # Reads (a poll's GETs) go over kept-alive stdlib connections when
        # nothing needs httpx: five times cheaper per request (_keepalive.py).
        target = plain_http_target(self.base_url)
        self._gets: KeptAliveGets | None = None
        if client is None and target is not None and (auth is None or isinstance(auth, tuple)):
            host, port, prefix = target
            self._gets = KeptAliveGets(
                host, port, prefix, headers=dict(headers or {}), auth=auth, timeout=timeout
            )
        self._closed = False
        self._has_plugin: bool | None = None  # unknown until first asked

    # -- plumbing ------------------------------------------------------------

    @contextmanager
    def _mapped(self, url: str) -> Iterator[None]:
        try:
            yield
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _NotConnectedError(f"cannot connect to Locust at {url}: {exc}", url=url) from exc
        except httpx.TimeoutException as exc:
            seconds = self._http.timeout.read
            raise LocustTimeoutError(
                f"Locust at {url} did not answer within the request timeout ({seconds:g} s, "
                "ClusterConfig(timeout=...) or LocustClient(timeout=...)); "
                "raise it for a busy master",
                url=url,
            ) from exc
        except httpx.TransportError as exc:
            raise LocustConnectionError(
                f"connection to Locust at {url} failed: {exc}", url=url
            ) from exc

    def _send(
        self,
        method: str,
        path: str,
        *,
        retry: Callable[[BaseException], bool],
        data: list[tuple[str, str]] | None = None,
    ) -> str:
        if self._closed:
            raise RuntimeError("this LocustClient is closed")
        url = f"{self.base_url}/{path}"

        form: dict[str, list[str]] = {}
        for key, value in data or ():
            form.setdefault(key, []).append(value)  # httpx repeats a key per list item

        def once() -> str:
            if method == "GET" and self._gets is not None:
                return self._gets.get(path, url)
            with self._mapped(url):
                response = self._http.request(method, path, data=form or None)
            if response.status_code >= 300:
                raise LocustHTTPError(response.status_code, response.text[:2000], url=url)
            return response.text

        def policy() -> tenacity.Retrying:
            return self._retrying().copy(retry=tenacity.retry_if_exception(retry), reraise=True)

        try:
            return with_retries(once, policy)
        except _NotConnectedError as exc:
            # Callers see the public type; the subclass only steered retries.
            raise LocustConnectionError(str(exc), url=url) from exc

    def _get(self, path: str) -> str:
        return self._send("GET", path, retry=_idempotent_retry)

    # -- the API -------------------------------------------------------------

    def swarm(
        self,
        users: int,
        spawn_rate: float,
        *,
        host: str | None = None,
        run_time: str | None = None,
        user_classes: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        **options: Any,
    ) -> SwarmResult:
        """Start (or re-scale) a load: ``users`` at ``spawn_rate`` users/s.

        Args:
            host: The target base URL; the master's default otherwise.
            run_time: Locust duration (``30s``, ``1h20m``) after which it stops.
            user_classes: Names of the user classes to run (class picker).
            tags: Task tags to include.
            **options: Custom locustfile options, sent as form fields.

        Raises:
            LocustRejectedError: the master refused, with Locust's message.
        """
        form = _wire.swarm_form(
            users,
            spawn_rate,
            host=host,
            run_time=run_time,
            user_classes=user_classes,
            tags=tags,
            options=options,
        )
        body = self._send("POST", "swarm", retry=_swarm_retry, data=form)
        return _wire.parse_swarm(body, f"{self.base_url}/swarm")

    def stop(self) -> None:
        """Stop the running load (the master keeps its statistics)."""
        body = self._send("POST", "stop", retry=_idempotent_retry)
        _wire.parse_ok(body, f"{self.base_url}/stop")

    def reset_stats(self) -> None:
        """Clear the master's statistics and exceptions."""
        self._send("POST", "stats/reset", retry=_idempotent_retry)

    def stats(self) -> LocustStats:
        """The current statistics (``/stats/requests``, cached 2 s by Locust)."""
        return _wire.parse_stats(self._get("stats/requests"), f"{self.base_url}/stats/requests")

    def stats_csv(self) -> tuple[EndpointSummary, ...]:
        """Cumulative figures with every percentile Locust reports (50% … 100%).

        The last row is the ``Aggregated`` one.
        """
        url = f"{self.base_url}/stats/requests/csv"
        return _wire.parse_requests_csv(self._get("stats/requests/csv"), url)

    def failures(self) -> tuple[LocustErrorRow, ...]:
        """Distinct failures and how often each occurred."""
        url = f"{self.base_url}/stats/failures/csv"
        return _wire.parse_failures_csv(self._get("stats/failures/csv"), url)

    def figures(self) -> MasterFigures | None:
        """Exact per-endpoint histograms from loadmanager's Locust plugin.

        ``None`` when the master was started without the plugin (it answers
        404 for the route); the answer is then remembered, so a master without
        it costs one request, not one per poll.
        """
        answer = self._plugin()
        return None if answer is None else answer[0]

    def poll(self) -> MasterPoll:
        """The statistics and the plugin's histograms, in one request where it can.

        A master whose plugin carries the ``/stats/requests`` figures (this
        version's does) answers both at once: a monitored run costs one
        request a poll, not two. Otherwise the statistics are a second GET.

        The plugin failing (a 5xx, an answer that cannot be read) is not the
        master failing: the poll then has the statistics alone, and says why
        in ``figures_error``. A master that cannot be reached at all raises,
        as :meth:`stats` does.
        """
        try:
            answer = self._plugin()
        except (LocustHTTPError, LocustResponseError) as exc:
            return MasterPoll(self.stats(), figures_error=exc)
        if answer is None:
            return MasterPoll(self.stats())
        figures, stats = answer
        return MasterPoll(stats if stats is not None else self.stats(), figures)

    def send_poll(self) -> SentPoll | None:
        """Send :meth:`poll`'s request and return at once: one thread polls many masters.

        The caller waits until :attr:`SentPoll.sock` is readable, calls
        :meth:`SentPoll.receive` until it returns ``True``, then reads
        :meth:`SentPoll.result` (the Monitor does this for every master on one
        ``selectors`` loop: no thread waits on a socket). ``None`` when this
        master cannot be polled so: HTTPS or another path through httpx, the
        ``fast`` extra missing, no kept-alive connection yet, or whether the
        master has the plugin not yet known. Then call :meth:`poll`, which
        opens the connection and learns the plugin.
        """
        if self._closed or self._gets is None or self._has_plugin is None:
            return None
        path = PLUGIN_ROUTE if self._has_plugin else "/stats/requests"
        sent = self._gets.send(path.lstrip("/"))
        return None if sent is None else SentPoll(sent, f"{self.base_url}{path}", self._has_plugin)

    def _plugin(self) -> tuple[MasterFigures, LocustStats | None] | None:
        if self._has_plugin is False:
            return None
        try:
            body = self._get(PLUGIN_ROUTE.lstrip("/"))
        except LocustHTTPError as exc:
            if exc.status_code != 404:
                raise
            self._has_plugin = False
            return None
        self._has_plugin = True
        return _wire.parse_plugin(body, f"{self.base_url}{PLUGIN_ROUTE}")

    def exceptions(self) -> tuple[LocustExceptionRow, ...]:
        """Exceptions raised in user code on the workers."""
        return _wire.parse_exceptions(self._get("exceptions"), f"{self.base_url}/exceptions")

    def report_html(self) -> str:
        """Locust's own self-contained HTML report."""
        return self._get("stats/report")

    def worker_count(self) -> int:
        """How many workers are connected to the master."""
        return _wire.parse_worker_count(self._get("worker-count"), f"{self.base_url}/worker-count")

    def close(self) -> None:
        """Close the HTTP connections (unless the client was passed in)."""
        if not self._closed:
            self._closed = True
            if self._owns_client:
                self._http.close()
            if self._gets is not None:
                self._gets.close()

    def __enter__(self) -> LocustClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocustClient({self.base_url!r})"


class SentPoll:
    """A poll's request in flight, from :meth:`LocustClient.send_poll`.

    Only a whole answer of status 2xx that parses, with the statistics in it,
    makes a :class:`MasterPoll`. Anything else (a connection that failed, an
    error status, an answer that does not parse, the plugin's without the
    statistics) makes ``None``: :meth:`LocustClient.poll` then asks again,
    with its retries, and raises what :meth:`LocustClient.poll` raises. So a
    master that misbehaves costs one more request, and its errors are said in
    one place.
    """

    __slots__ = ("_plugin", "_sent", "_url")

    def __init__(self, sent: SentGet, url: str, plugin: bool) -> None:
        self._sent, self._url, self._plugin = sent, url, plugin

    @property
    def sock(self) -> socket.socket:
        """The socket to wait on until it is readable."""
        return self._sent.sock

    @property
    def timeout(self) -> float:
        """Seconds the answer may take (the client's timeout)."""
        return self._sent.timeout

    def receive(self) -> bool:
        """Read what arrived; whether the exchange is over (answered or failed)."""
        return self._sent.receive()

    def result(self) -> MasterPoll | None:
        """The poll, once :meth:`receive` returned ``True``; ``None``: call ``poll()``."""
        answer = self._sent.answer
        if answer is None or not 200 <= answer[0] < 300:
            return None
        try:
            if not self._plugin:
                return MasterPoll(_wire.parse_stats(answer[1], self._url))
            figures, stats = _wire.parse_plugin(answer[1], self._url)
        except LocustResponseError:
            return None
        return None if stats is None else MasterPoll(stats, figures)

    def cancel(self) -> None:
        """Give up on the answer: its connection is closed."""
        self._sent.cancel()
