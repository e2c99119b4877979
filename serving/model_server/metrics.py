"""Prometheus metrics of one model server (its own registry, so several servers can live in one process).

Exposed on the REST port at the monitoring path (TF Serving's default `/monitoring/prometheus/metrics`):

| metric                                           | labels                                  |
|--------------------------------------------------|-----------------------------------------|
| `dcgan_serving_requests_total`                   | model, version, api (grpc/rest), method, code |
| `dcgan_serving_request_errors_total`             | model, version, api, method, code (code != OK) |
| `dcgan_serving_request_latency_seconds` (histogram) | model, version, api, method          |
| `dcgan_serving_batch_size` (histogram)           | model, version, signature               |
| `dcgan_serving_model_version_available` (gauge)  | model, version                          |
| `dcgan_serving_model_load_failures_total`        | model, version                          |
| `dcgan_serving_config_reloads_total`             | source (startup/grpc/file), result      |

Requests naming a model the server does not serve are counted with model="_unknown_".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from serving.errors import Code, ServingError

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class RequestRecord:
    """Filled in by the handler while it runs: which version answered and how it ended."""

    __slots__ = ("model", "version", "code")

    def __init__(self, model: str):
        self.model = model
        self.version = ""
        self.code = Code.OK


UNKNOWN_MODEL = "_unknown_"


class ServingMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        # Requests for models the server does not have are counted under one label value, so that clients sending
        # arbitrary names cannot grow the number of time series without bound.
        self.is_known_model: Callable[[str], bool] = lambda name: True
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("dcgan_serving_requests", "Requests answered, by outcome.",
                                ["model", "version", "api", "method", "code"], registry=r)
        self.errors = Counter("dcgan_serving_request_errors", "Requests that failed, by status code.",
                              ["model", "version", "api", "method", "code"], registry=r)
        self.latency = Histogram("dcgan_serving_request_latency_seconds", "Time to answer a request.",
                                 ["model", "version", "api", "method"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("dcgan_serving_batch_size", "Rows per executed batch (before padding).",
                                    ["model", "version", "signature"], buckets=BATCH_BUCKETS, registry=r)
        self.available = Gauge("dcgan_serving_model_version_available", "1 while a version is AVAILABLE.",
                               ["model", "version"], registry=r)
        self.load_failures = Counter("dcgan_serving_model_load_failures", "Versions that failed to load.",
                                     ["model", "version"], registry=r)
        self.reloads = Counter("dcgan_serving_config_reloads", "Model config reloads.", ["source", "result"],
                               registry=r)

    @contextmanager
    def track(self, api: str, method: str, model: str):
        record = RequestRecord(model)
        start = time.perf_counter()
        try:
            yield record
        except ServingError as e:
            record.code = e.code
            raise
        except BaseException:
            record.code = Code.INTERNAL
            raise
        finally:
            elapsed = time.perf_counter() - start
            labels = (self.model_label(record.model), str(record.version), api, method)
            self.requests.labels(*labels, record.code.name).inc()
            if record.code != Code.OK:
                self.errors.labels(*labels, record.code.name).inc()
            self.latency.labels(*labels).observe(elapsed)

    def model_label(self, name: str) -> str:
        return name if not name or self.is_known_model(name) else UNKNOWN_MODEL

    def render(self) -> bytes:
        return generate_latest(self.registry)
