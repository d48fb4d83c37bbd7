"""Prometheus metrics on their own HTTP port, labelled per model, version and method.

Label children are bound once per (method, code) and cached: looking labels up on every
request would cost more than the rest of the bookkeeping.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


class Metrics:
    def __init__(self, model: str) -> None:
        """In a worker process (``--processes N``), prometheus_client writes values to the
        multi-process files the supervisor's /metrics aggregates (PROMETHEUS_MULTIPROC_DIR)."""
        self.registry = CollectorRegistry()
        self.model = model
        self.version = ""
        labels = ("model", "version", "method")
        self._requests = Counter(
            "imm_serving_requests", "gRPC calls handled", labels, registry=self.registry
        )
        self._errors = Counter(
            "imm_serving_request_errors",
            "gRPC calls answered with an error status",
            (*labels, "code"),
            registry=self.registry,
        )
        self._latency = Histogram(
            "imm_serving_request_duration_seconds",
            "time to handle a gRPC call, decoding to encoding",
            labels,
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.inflight = Gauge(
            "imm_serving_inflight_requests",
            "calls being handled now",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._ready = Gauge(
            "imm_serving_model_ready",
            "1 when the model version is loaded and serving",
            ("model", "version"),
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self._bound: dict[str, tuple[Counter, Histogram]] = {}
        self._started: dict[str, int] = {}

    def started(self, method: str) -> None:
        """Count a call whose handler began; the shutdown log reports these, so a test (or
        an operator) can check that every accepted call was answered. Called on the
        server's event loop thread only, hence no lock."""
        self._started[method] = self._started.get(method, 0) + 1

    def started_calls(self) -> dict[str, int]:
        """Read once the server has stopped (its loop thread has ended)."""
        return dict(self._started)

    def set_ready(self, version: int, ready: bool) -> None:
        self.version = str(version)
        self._bound.clear()
        self._ready.labels(self.model, self.version).set(1 if ready else 0)

    def observe(self, method: str, code: str, seconds: float) -> None:
        bound = self._bound.get(method)
        if bound is None:
            labels = (self.model, self.version, method)
            bound = self._bound[method] = (
                self._requests.labels(*labels),
                self._latency.labels(*labels),
            )
        bound[0].inc()
        bound[1].observe(seconds)
        if code != "OK":
            self._errors.labels(self.model, self.version, method, code).inc()

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        start_http_server(port, addr=host, registry=self.registry)
