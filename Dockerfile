# One image for every Tidings process: web (default CMD), workers and the
# scheduler differ only in the command they run.

# ---- builder: install the locked dependencies into /app/.venv ----------------
FROM python:3.11-slim-bookworm AS builder

# Pinned and taken from PyPI, so the build needs no other registry.
RUN pip install --no-cache-dir --disable-pip-version-check uv==0.13.9

# Compile bytecode now so containers don't pay for it at every start.
# Copy instead of hard-linking: the cache mount is on another filesystem.
# Never download an interpreter: the venv must use the one the runtime
# stage has at the same path.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never

WORKDIR /app

# Dependencies alone first: this layer is rebuilt only when pyproject.toml or
# uv.lock change.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# Then the project itself (editable, pointing at /app), which also creates the
# `tidings` console script. README.md is read by the build backend.
COPY README.md ./
COPY tidings/ tidings/
COPY webapp/ webapp/
COPY jobs/ jobs/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev


# ---- runtime ------------------------------------------------------------------
# Same base as the builder: the venv's interpreter link must resolve here.
FROM python:3.11-slim-bookworm AS runtime

# Unbuffered so logs reach the container log at once. No .pyc writes: the
# code is read-only for the app user. HOST must be 0.0.0.0 to be reachable
# through a published port. Production by default, so the image refuses to
# start without a real SECRET_KEY.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TIDINGS_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000

RUN groupadd --system --gid 10001 tidings \
    && useradd --system --uid 10001 --gid tidings \
       --create-home --home-dir /home/tidings --shell /usr/sbin/nologin tidings

WORKDIR /app

# Files stay owned by root so a compromised process cannot rewrite the app.
COPY --from=builder /app/.venv /app/.venv
COPY tidings/ tidings/
COPY webapp/ webapp/
COPY jobs/ jobs/
COPY templates/ templates/
COPY static/ static/
COPY alembic/ alembic/
COPY alembic.ini ./

USER tidings

EXPOSE 8000

# Only meaningful for the web process; compose turns it off for the others. Readiness: healthy
# means the process answers and reaches the database (and Redis); /health/live checks the process only.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/ready' % os.environ.get('PORT', '8000'), timeout=4)" || exit 1

# Exec form so the server gets stop signals directly.
CMD ["tidings", "serve"]
