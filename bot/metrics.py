"""Votz's metrics, exposed at `GET /metrics` through prometheus-client.

One registry per `App` (tests run many apps in one process). What is counted as it happens:

    votz_inbound_messages_total{channel, outcome}      handled, duplicate
    votz_webhook_refused_total{channel, reason}         signature, secret, malformed, …
    votz_outbound_messages_total{channel, outcome}      sent, retry, failed
    votz_send_seconds{channel}                          provider call latency (histogram)
    votz_rate_limit_waits_total{channel}                sends that waited for the send rate
    votz_rate_limit_wait_seconds_total{channel}         and how long in all
    votz_provider_throttled_total{channel}              429 answers (Too Many Requests)
    votz_bulk_queued_messages_total{kind}               reminder, nudge, broadcast
    votz_task_restarts_total{task}                      supervised loops restarted
    votz_log_errors_total{logger}                       ERROR lines logged

and what is read from the database at each scrape:

    votz_outbox_messages{status}                        rows by status
    votz_outbox_oldest_due_seconds{kind}                age of the longest-waiting due reply
                                                        (kind="reply") or bulk message

A few counters channels keep by name (`host.metrics["sms_not_mobile_total"] += 1`) are
exposed as `votz_<name>`.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series: noise

# Legacy names the channels count under → (metric, labels).
_WEBHOOK_REFUSALS = {
    "sms_signature_invalid_total": ("sms", "signature"),
    "sms_not_mobile_total": ("sms", "not_mobile"),
    "sms_not_stored_total": ("sms", "not_stored"),
    "telegram_secret_invalid_total": ("telegram", "secret"),
    "telegram_malformed_total": ("telegram", "malformed"),
}


class _Named(Collector):
    """The counters kept by name, as Prometheus counters."""

    def __init__(self, tally: Tally[str]) -> None:
        self.tally = tally

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, value in sorted(self.tally.items()):
            if name in _WEBHOOK_REFUSALS or "{" in name:
                continue
            family = CounterMetricFamily(f"votz_{name.removesuffix('_total')}",
                                         f"Votz counter {name}")
            family.add_metric([], value)
            yield family


class Metrics(Tally[str]):
    """A tally by name (what channels and tasks increment) plus the labelled metrics."""

    def __init__(self) -> None:
        super().__init__()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.inbound = Counter("votz_inbound_messages", "Messages received",
                               ["channel", "outcome"], registry=r)
        self.refused = Counter("votz_webhook_refused", "Provider calls refused",
                               ["channel", "reason"], registry=r)
        self.outbound = Counter("votz_outbound_messages", "Messages handed to providers",
                                ["channel", "outcome"], registry=r)
        self.send_seconds = Histogram(
            "votz_send_seconds", "Provider call latency", ["channel"], registry=r,
            buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0))
        self.rate_waits = Counter("votz_rate_limit_waits", "Sends that waited for the rate",
                                  ["channel"], registry=r)
        self.rate_wait_seconds = Counter("votz_rate_limit_wait_seconds",
                                         "Time sends waited for the rate", ["channel"],
                                         registry=r)
        self.throttled = Counter("votz_provider_throttled", "429 Too Many Requests answers",
                                 ["channel"], registry=r)
        self.bulk_queued = Counter("votz_bulk_queued_messages", "Bulk messages queued",
                                   ["kind"], registry=r)
        self.task_restarts = Counter("votz_task_restarts", "Supervised loops restarted",
                                     ["task"], registry=r)
        self.log_errors = Counter("votz_log_errors", "ERROR lines logged", ["logger"],
                                  registry=r)
        self.outbox = Gauge("votz_outbox_messages", "Outbox rows by status", ["status"],
                            registry=r)
        self.oldest_due = Gauge("votz_outbox_oldest_due_seconds",
                                "How long the longest-waiting due message has waited",
                                ["kind"], registry=r)
        r.register(_Named(self))

    def __setitem__(self, key: str, value: int) -> None:
        """`metrics["sms_signature_invalid_total"] += 1` lands in the labelled counter."""
        increase = value - self.get(key, 0)
        super().__setitem__(key, value)
        if increase <= 0:
            return
        refused = _WEBHOOK_REFUSALS.get(key)
        if refused is not None:
            self.refused.labels(*refused).inc(increase)
        elif key.startswith('task_restarts_total{task="'):
            self.task_restarts.labels(key.split('"')[1]).inc(increase)

    def outbox_state(self, counts: dict[str, int], oldest: dict[str, datetime | None],
                     now: datetime) -> None:
        for status in ("queued", "sending", "sent", "delivered", "failed", "cancelled"):
            self.outbox.labels(status).set(counts.get(status, 0))
        for kind, at in oldest.items():
            self.oldest_due.labels(kind).set(0 if at is None else
                                             max(0.0, (now - at).total_seconds()))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class ErrorCounter(logging.Handler):
    """Counts ERROR lines by logger into `votz_log_errors_total`."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(level=logging.ERROR)
        self.metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        self.metrics.log_errors.labels(record.name).inc()


def counted(metrics: Any) -> Metrics | None:
    """The app's metrics when they are Votz's (tests may pass a plain Counter)."""
    return metrics if isinstance(metrics, Metrics) else None
