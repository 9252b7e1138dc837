"""What the service's images, its pods and whatever watches them agree on.

The Dockerfiles (app/docker/) bake these values in; the pods (pods.py), monitoring's scrape targets
(components/monitoring.py) and the tests read them from here instead of restating them.
"""

from __future__ import annotations

from typing import Literal

# One image, one service account and one IRSA role each.
Component = Literal["api", "worker", "migrations"]
COMPONENTS: tuple[Component, ...] = ("api", "worker", "migrations")

# app.kubernetes.io/name of every pod and Service of the service.
APP_NAME = "ai-agents"
PART_OF = "ai-agents-platform"

# uvicorn's port; the API serves its own /metrics there too.
API_PORT = 8000
# The worker's own Prometheus endpoint (its WORKER_METRICS_PORT).
METRICS_PORT = 9090
# A high UID/GID outside any host range (the images create this user; see app/docker/).
RUN_AS = 10001
# Where the images carry the RDS CA bundle (fetched at build, pinned by checksum; see app/docker/):
# the pods verify the database's certificate and host name against it (DATABASE_SSLMODE verify-full).
RDS_CA_BUNDLE_PATH = "/opt/rds/global-bundle.pem"
DATABASE_SSLMODE = "verify-full"
# uvicorn's graceful-shutdown timeout, set in the API image's command.
API_SHUTDOWN_SECONDS = 20
# Idle keep-alive connections between the edge's proxies and the API: the proxy closes them after
# EDGE_UPSTREAM_IDLE_SECONDS, uvicorn only after API_KEEP_ALIVE_SECONDS (in the image's command). The
# proxy must be the one to close: a request it sends on a connection uvicorn is closing at that moment
# is reset (a 503 at the edge, a lost delivery to ServiceDesk Plus). uvicorn's own default is 5 s.
EDGE_UPSTREAM_IDLE_SECONDS = 60
API_KEEP_ALIVE_SECONDS = 75
# The Redis list the workers consume (Celery's queue, app/worker/dispatch.py) and the database it is in:
# the only queue the app publishes to, without message priorities (so no suffixed priority lists).
# KEDA reads its length to scale the workers.
BROKER_QUEUE = "enhancements"
BROKER_DATABASE = 0


def service_name(component: Component) -> str:
    """The OpenTelemetry ``service.name`` of a component's spans (``ai-agents-api``, ``ai-agents-worker``):
    the same names as its Prometheus job."""
    return f"{APP_NAME}-{component}"


def selector_labels(component: Component) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/component": component}


def labels(component: Component, version: str) -> dict[str, str]:
    return {
        **selector_labels(component),
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }
