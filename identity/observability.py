"""Logging and metrics. Nothing here ever receives a payload, a secret or a token."""

from __future__ import annotations

import logging

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram


def configure_logging(level: str) -> None:
    logging.basicConfig(format="%(message)s", level=level.upper())
    # httpx logs every request at INFO; our own lines say what matters about the auth centre.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )


class Metrics:
    """One registry per app, so several apps (tests, benchmarks) can live in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.marketplace_calls = Counter(
            "identity_marketplace_calls",
            "KooGallery callbacks answered, by interface and result code",
            ["interface", "result_code"],
            registry=self.registry,
        )
        self.marketplace_latency = Histogram(
            "identity_marketplace_call_seconds",
            "Time to answer a KooGallery callback",
            ["interface"],
            registry=self.registry,
        )
        self.sso_logins = Counter(
            "identity_sso_logins",
            "Member logins, by outcome (success or the refusal reason)",
            ["outcome"],
            registry=self.registry,
        )
        self.sso_upstream_errors = Counter(
            "identity_sso_upstream_errors",
            "Failed calls to tenants' auth centres, by call and kind of failure",
            ["call", "kind"],
            registry=self.registry,
        )
        self.sso_renewals = Counter(
            "identity_sso_token_renewals",
            "Upstream token renewals, by outcome",
            ["outcome"],
            registry=self.registry,
        )
