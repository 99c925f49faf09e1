# Kilowatch API. With DATABASE_URL set (see docker-compose.yml) it uses that PostgreSQL;
# without it, it starts the embedded PostgreSQL under KILOWATCH_DATA_DIR.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KILOWATCH_DATA_DIR=/var/lib/kilowatch

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY kilowatch ./kilowatch
RUN pip install -c constraints.txt . \
    && useradd --system --create-home --uid 10001 kilowatch \
    && mkdir -p /var/lib/kilowatch \
    && chown kilowatch:kilowatch /var/lib/kilowatch

USER kilowatch
EXPOSE 8000
# /readyz: the database answers and migrations are applied (python: the slim image has no curl).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status != 200)"]
# Docker sends SIGTERM on stop; exec form makes kilowatch PID 1's direct recipient.
CMD ["kilowatch", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
