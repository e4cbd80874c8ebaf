# Reference image: alembic-deploy in front of the example app (examples/app).
#
#   docker build -t alembic-deploy-example .
#   docker run -e DATABASE_URL=postgresql://user:pw@host/db -p 8000:8000 alembic-deploy-example
#
# The entrypoint migrates (wait, lock, upgrade to head) and then execs CMD, so the app is PID 1.
# Works with the classic builder (no BuildKit-only syntax). Any Debian-like base with python3
# (3.11+) and python3-venv can replace the default through PYTHON_IMAGE.
ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS builder
# Optional package index for pip (a mirror); build arguments of this stage only, so they never
# reach the final image.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY runner/ runner/
RUN /opt/venv/bin/pip install --no-cache-dir .

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    ALEMBIC_CONFIG=/app/examples/app/alembic.ini \
    PORT=8000
RUN useradd --system --user-group --uid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY entrypoint /app/entrypoint
COPY examples/app/ /app/examples/app/
# The code stays root-owned; only the app directory is writable, for the SQLite file that is
# used when no DATABASE_URL is given.
RUN chown app:app /app/examples/app
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
WORKDIR /app/examples/app
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health', timeout=4)"]
ENTRYPOINT ["/app/entrypoint"]
CMD ["python3", "app.py"]
