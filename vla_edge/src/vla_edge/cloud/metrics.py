"""The service's Prometheus metrics (own registry, `vla_cloud_` prefix): requests by transport and
outcome, batch sizes, forward and request times, queue depth, batch cap and its changes, requests run
inline."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

OUTCOMES = ("ok", "bad_request", "unauthorized", "overloaded", "deadline", "error")
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
_TIME_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class _Live(Collector):
    """Values read when scraped: queue depth, batch cap, cap changes, inline requests, memory fraction, model
    info."""

    def __init__(self, read: Callable[[], dict]):
        self.read = read

    def collect(self) -> Iterator:
        v = self.read()
        yield GaugeMetricFamily("vla_cloud_queue_depth", "requests waiting for a batch", value=v["queue_depth"])
        yield GaugeMetricFamily("vla_cloud_batch_cap", "batch size cap in force (adaptive)", value=v["batch_cap"])
        yield GaugeMetricFamily("vla_cloud_memory_fraction", "memory in use over the budget the cap follows",
                                value=v["memory_fraction"])
        yield CounterMetricFamily("vla_cloud_batch_cap_changes", "times the adaptive cap changed",
                                  value=v["cap_changes"])
        yield CounterMetricFamily("vla_cloud_inline_requests", "requests run at once on an idle batcher, "
                                  "on the event loop without the batch worker", value=v["inline"])
        info = GaugeMetricFamily("vla_cloud_model_info", "served model", labels=["name", "version"])
        info.add_metric([v["model_name"], v["model_version"]], 1)
        yield info


class ServiceMetrics:
    def __init__(self, read_live: Callable[[], dict]):
        self.registry = CollectorRegistry()
        self.requests = Counter("vla_cloud_requests", "requests by transport and outcome",
                                ["transport", "outcome"], registry=self.registry)
        self.batch_size = Histogram("vla_cloud_batch_size", "requests per forward pass", buckets=_BATCH_BUCKETS,
                                    registry=self.registry)
        self.forward_seconds = Histogram("vla_cloud_forward_seconds", "one batch: preprocessing and forward pass",
                                         buckets=_TIME_BUCKETS, registry=self.registry)
        self.request_seconds = Histogram("vla_cloud_request_seconds", "a request from arrival to answer",
                                         ["transport"], buckets=_TIME_BUCKETS, registry=self.registry)
        for transport in ("http", "ws"):
            for outcome in OUTCOMES:
                self.requests.labels(transport, outcome)
        self.registry.register(_Live(read_live))

    def on_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.forward_seconds.observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)
