# syntax=docker/dockerfile:1
# MangaHub image: one image, every part (`mangahub serve [api|tcp|udp|grpc|sync]`).
# The builder makes the project wheel and wheels of every pinned dependency
# (requirements.lock); the runtime stage installs exactly those, offline.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Dependencies first: this layer is reused until requirements.lock changes.
COPY requirements.lock ./
RUN pip wheel --wheel-dir /wheels -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
# The same wheel `pip wheel --no-deps .` builds in the test suite.
RUN pip wheel --no-deps --wheel-dir /dist .

FROM python:${PYTHON_VERSION}-slim AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    MANGAHUB_DATA_DIR=/var/lib/mangahub \
    MANGAHUB_HOST=0.0.0.0
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    --mount=type=bind,from=builder,source=/dist,target=/dist \
    --mount=type=bind,source=requirements.lock,target=/tmp/requirements.lock \
    pip install --no-index --find-links /wheels -r /tmp/requirements.lock \
    && pip install --no-index --no-deps /dist/mangahub-*.whl
COPY scripts/healthcheck.py /opt/mangahub/healthcheck.py
RUN groupadd --system --gid 10001 mangahub \
    && useradd --system --uid 10001 --gid mangahub --home-dir /var/lib/mangahub mangahub \
    && install -d -o mangahub -g mangahub -m 0750 /var/lib/mangahub
USER mangahub
WORKDIR /var/lib/mangahub
# SQLite file and generated secrets when no database_url / secrets are given.
VOLUME ["/var/lib/mangahub"]
# 8084 HTTP + WebSocket, 8081 TCP sync, 8082 UDP notifications, 8083 gRPC, 8085 trigger.
EXPOSE 8084 8081 8082/udp 8083 8085
# Probes the HTTP part; compose overrides it for the parts that have no HTTP door.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/opt/mangahub/healthcheck.py", "http", "http://127.0.0.1:8084/healthz"]
ENTRYPOINT ["mangahub"]
CMD ["serve"]
