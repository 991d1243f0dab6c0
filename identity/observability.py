"""Logging and metrics. Nothing here ever receives a payload, a secret or a token.

**Logs.** Every line is one JSON object on stdout: structlog's own lines and, through the same
renderer, those of the libraries that log with `logging` (uvicorn, the HTTP client) and Python's
warnings (logged as `py.warnings`). Each request's lines carry its `request_id`
(`RequestObserver`), and the `tenant_id`, `app_id`, `client_id` or marketplace `interface` once
the code handling it knows them (`bind`).

**Metrics.** One registry per app (`Metrics`) and one for the worker (`WorkerMetrics`); the
names are fixed, since dashboards and alerts use them (README lists them).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SHARED: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class _JsonLines(logging.StreamHandler):  # type: ignore[type-arg]
    """The standard library's records as JSON lines on whatever `sys.stdout` is when each is
    written (tests swap it), as structlog's own lines are."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def configure_logging(level: str) -> None:
    """structlog, the standard library's loggers and warnings, all as JSON lines on stdout.
    Handlers someone else put on the root logger (a test runner's) stay."""
    threshold = logging.getLevelName(level.upper())
    handler = _JsonLines()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *_SHARED],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(ensure_ascii=False),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _JsonLines)] + [handler]
    root.setLevel(threshold)
    # The HTTP client logs every request at INFO; our own lines say what matters about the
    # auth centres and the apps.
    for name in ("httpx2", "httpcore2"):
        logging.getLogger(name).setLevel(max(logging.WARNING, threshold))
    # Python prints a warning (a library's deprecation, say) as plain lines on stderr: a log
    # collector parsing JSON would mangle or drop them. Logged, it is one line like the others.
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.processors.format_exc_info,  # `log.exception`: the traceback, as a string
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        cache_logger_on_first_use=True,
    )


def bind(**known: str | None) -> None:
    """Put what the request turned out to be about on its log lines from here on."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in known.items() if v})


class Metrics:
    """One registry per app, so several apps (tests, benchmarks) can live in one process."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.http_requests = Counter(
            "identity_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.http_seconds = Histogram(
            "identity_http_request_seconds",
            "Time to answer an HTTP request, by route template and method",
            ["route", "method"],
            registry=registry,
        )
        self._http_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.upstream_seconds = Histogram(
            "identity_upstream_call_seconds",
            "Time of calls to tenants' auth centres (token, refresh, userinfo), failures included",
            ["call"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=registry,
        )
        self.database = DatabaseGauges()
        registry.register(self.database)
        self.marketplace_calls = Counter(
            "identity_marketplace_calls",
            "KooGallery callbacks answered, by interface and result code",
            ["interface", "result_code"],
            registry=registry,
        )
        self.order_queries = order_queries(registry)
        self.marketplace_latency = Histogram(
            "identity_marketplace_call_seconds",
            "Time to answer a KooGallery callback",
            ["interface"],
            registry=registry,
        )
        self.sso_logins = Counter(
            "identity_sso_logins",
            "Member logins, by outcome (success or the refusal reason)",
            ["outcome"],
            registry=registry,
        )
        self.sso_upstream_errors = Counter(
            "identity_sso_upstream_errors",
            "Failed calls to tenants' auth centres, by call and kind of failure",
            ["call", "kind"],
            registry=registry,
        )
        self.sso_renewals = Counter(
            "identity_sso_token_renewals",
            "Upstream token renewals, by outcome",
            ["outcome"],
            registry=registry,
        )

    def answered(self, route: str, method: str, status: int, started: float) -> None:
        """Count an HTTP request answered and time it from `started` (`time.perf_counter()`).
        Each label set's series is looked up in the registry once (the labels are route
        templates and the parser's methods: few)."""
        key = (route, method, status)
        series = self._http_series.get(key)
        if series is None:
            series = self._http_series[key] = (
                self.http_requests.labels(route, method, str(status)),
                self.http_seconds.labels(route, method),
            )
        series[0].inc()
        series[1].observe(time.perf_counter() - started)

    def watch_pool(self, engine: AsyncEngine) -> None:
        """`identity_db_pool_in_use`: the engine's connections checked out, read at scrape."""
        pool = engine.sync_engine.pool
        checked_out = getattr(pool, "checkedout", None)
        gauge = Gauge(
            "identity_db_pool_in_use",
            "Database connections of this process in use",
            registry=self.registry,
        )
        gauge.set_function(lambda: float(checked_out()) if checked_out else 0.0)


class DatabaseGauges(Collector):
    """Gauges counted in the database, shared by every replica: `identity_sessions_active`
    and `identity_backchannel_outbox_pending`. The scrape counts them (`health.metrics`) just
    before the registry is read; a scrape that could not count them leaves them out."""

    HELP = {
        "identity_sessions_active": "Member sessions neither expired nor idle past the timeout",
        "identity_backchannel_outbox_pending": "Back-channel logouts queued, not yet delivered "
        "or given up",
    }

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def collect(self) -> Iterable[Metric]:
        for name, value in self.values.items():
            yield GaugeMetricFamily(name, self.HELP[name], value=value)

    def describe(self) -> Iterable[Metric]:
        return ()


class WorkerMetrics:
    """The worker's registry, served on its own metrics port (`identity worker`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.backchannel_failures = Counter(
            "identity_backchannel_delivery_failures",
            "Back-channel logout attempts that failed, by what happens next (retried, given_up)",
            ["outcome"],
            registry=self.registry,
        )
        self.event_failures = Counter(
            "identity_event_delivery_failures",
            "Change-event batches whose sending failed, by what happens next (retried, given_up)",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in ("retried", "given_up"):  # at zero from the start, for rate()
            self.backchannel_failures.labels(outcome)
            self.event_failures.labels(outcome)
        self.order_queries = order_queries(self.registry)


def order_queries(registry: CollectorRegistry) -> Counter:
    """The query-order API's answers to newInstance and to the worker's retries, by outcome
    (`confirmed`, `refused`, `credentials`: our access key refused, `unavailable`)."""
    counter = Counter(
        "identity_marketplace_order_queries",
        "Order queries to the marketplace's open API, by outcome",
        ["outcome"],
        registry=registry,
    )
    for outcome in ("confirmed", "refused", "credentials", "unavailable"):
        counter.labels(outcome)
    return counter


REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
UNMATCHED = "unmatched"
"""The `route` label of a request no route matched: raw paths never become labels."""


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's `X-Request-ID` when it is a sane token, else a new one."""
    for name, value in headers:
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1")
            return text if REQUEST_ID.fullmatch(text) else os.urandom(16).hex()
    return os.urandom(16).hex()


def route_of(scope: Scope) -> str:
    """The template of the route that answered (`/api/admin/members/{user_name}`)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class RequestObserver:
    """Pure ASGI, outside everything but the security headers: each HTTP request gets its
    `request_id` (bound to its log lines, answered as `X-Request-ID`), and is counted and timed
    by route template. A request whose handler raised without answering counts as a 500."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope.get("headers", ()))
        header = (b"x-request-id", rid.encode())
        status = 500
        started = time.perf_counter()

        async def answering(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        with _request_context(rid):
            try:
                await self.app(scope, receive, answering)
            finally:
                self.metrics.answered(route_of(scope), scope["method"], status, started)


@contextmanager
def _request_context(rid: str) -> Iterator[None]:
    """The request's log context, alone: whatever a caller in the same task had bound (a test
    calling the app in-process) is set aside for the request and put back after it."""
    saved = structlog.contextvars.get_contextvars()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=rid)
    try:
        yield
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**saved)
