# syntax=docker/dockerfile:1.7
# The API image: uvicorn serving app.api.main:app on :8000 (components/workloads/pods.py runs it as UID 10001
# with a read-only root filesystem; /tmp is the only writable path). Build context: the repository root.
# The build stage is identical in api, worker and migrations.Dockerfile, so the three builds share cache.

# python:3.11.13-slim-bookworm (Debian 12), pinned by digest: a re-pushed tag cannot change the image.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

# --- build: the project wheel and its run-time dependencies, installed into /opt/venv -----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
RUN python -m venv /opt/venv
# Only what the wheel is built from (.dockerignore keeps everything else out of the context).
COPY pyproject.toml README.md constraints.txt ./
COPY app ./app
# The base dependencies of pyproject.toml are the run-time set; extras (infra, dev) never enter the image.
# constraints.txt pins every one of them to the versions the test suite ran (`make lock` re-pins).
# pip compiles the bytecode here, so nothing has to be written at run time (read-only root FS).
RUN /opt/venv/bin/pip wheel --no-cache-dir --constraint constraints.txt --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels /wheels/ai_agents_platform-*.whl \
 && /opt/venv/bin/pip uninstall --yes pip setuptools wheel

# --- run: the interpreter, the installed environment, nothing else --------------------------------
FROM ${PYTHON_IMAGE} AS run
ARG VERSION=0.1.0
ARG GIT_SHA=unknown
ARG SOURCE_URL=https://github.com/ai-agents-platform/ai-agents-platform
LABEL org.opencontainers.image.title="ai-agents-api" \
      org.opencontainers.image.description="Multi-tenant ServiceDesk Plus ticket enhancement: HTTP API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_SHA}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="LicenseRef-Proprietary"
# A fixed, high UID/GID (>= 10000: never a host user; the pods set runAsUser/runAsGroup 10001).
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
# RDS's CA bundle (every commercial region): the pods verify the database's certificate and host name
# against it (DATABASE_SSLMODE=verify-full, DATABASE_SSLROOTCERT; components/workloads/contract.py).
# Pinned by checksum: when AWS changes the bundle the build fails until `make rds-ca-pin` records the new
# checksum in the three Dockerfiles (review the diff: it is a change of what the service trusts).
ADD --checksum=sha256:5fa49cac7e6e9202ef85331c6f83377a71339d692d5644c9417a2d81406f0c03 --chmod=0444 \
    https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem /opt/rds/global-bundle.pem
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
# An empty, root-owned working directory: nothing on sys.path but the installed environment.
WORKDIR /srv
USER 10001:10001
EXPOSE 8000
# Liveness only (/health makes no dependency call); readiness is /api/v1/ready in Kubernetes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
# uvicorn is PID 1 and handles SIGTERM: it stops accepting, drains in-flight requests for up to 20 s.
# Idle connections are kept 75 s, longer than the edge keeps them (60 s), so the proxy closes them, never
# uvicorn under a request in flight (components/workloads/contract.py).
STOPSIGNAL SIGTERM
CMD ["uvicorn", "app.api.main:app", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers", "--forwarded-allow-ips=*", "--timeout-graceful-shutdown", "20", "--timeout-keep-alive", "75"]
