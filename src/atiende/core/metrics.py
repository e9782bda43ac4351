"""Prometheus metrics, defined once per process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "atiende_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "atiende_http_request_seconds", "HTTP request latency", ["method", "route"]
)
WEBSOCKETS = Gauge("atiende_websocket_connections", "Open websocket connections")
EVENTS_DELIVERED = Counter(
    "atiende_websocket_events_sent_total", "Events sent to websocket clients"
)
JOBS_RUN = Counter("atiende_jobs_total", "Jobs run by outcome", ["kind", "outcome"])
