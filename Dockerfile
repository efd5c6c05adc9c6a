# syntax=docker/dockerfile:1
# Hikeshi: one image for the web app and the worker (deploy/entrypoint.py picks the process).
# Build: docker build -t hikeshi .   Run: see compose.yaml and docs/operations.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build stage: resolve and install the locked dependencies into /app/.venv -----------------
FROM ${PYTHON_IMAGE} AS build
COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# the lock file first: the dependency layer is rebuilt only when the lock changes
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev

# --- final stage: the same Python, the virtual environment and the code; no uv, no compilers -----
FROM ${PYTHON_IMAGE}
ARG UID=10001
RUN groupadd --system --gid ${UID} hikeshi \
    && useradd --system --uid ${UID} --gid hikeshi --home-dir /app --shell /usr/sbin/nologin hikeshi \
    && mkdir -p /data \
    && chown hikeshi:hikeshi /data
WORKDIR /app
COPY --from=build --chown=root:root /app /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HIKESHI_DATA_DIR=/data \
    HIKESHI_BIND_ADDRESS=0.0.0.0 \
    HIKESHI_PORT=8501
USER hikeshi
VOLUME ["/data"]
EXPOSE 8501
ENTRYPOINT ["python", "-m", "deploy.entrypoint"]
CMD ["app"]
