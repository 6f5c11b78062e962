# Agent-Net worker: Flask under gunicorn (`python -m worker`), runtime dependencies only.
# Build: docker compose build worker   (or: docker build -t agent-net-worker .)

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv --without-pip /opt/agent-net
# Dependencies first (cached while only the code changes), read from the project's own
# metadata: [project].dependencies only, never the `payments` or `test` extras.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && pip --python /opt/agent-net/bin/python install --no-cache-dir -r requirements.txt
# The readme and licence file named in pyproject (README.m[d]: copied when present).
COPY pyproject.toml README.m[d] LICENSE ./
COPY worker/ worker/
RUN pip --python /opt/agent-net/bin/python install --no-cache-dir --no-deps .

FROM python:3.11-slim
ENV PATH=/opt/agent-net/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WORKER_HOST=0.0.0.0 \
    WORKER_PORT=9876 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=utility
RUN useradd --system --user-group --uid 10001 --create-home --home-dir /home/agentnet \
    --shell /usr/sbin/nologin agentnet \
    && mkdir -p /data && chown 10001:10001 /data
# Usage history (usage.sqlite3) survives restarts in a volume here (docs/residency.md).
ENV AGENT_NET_DATA_DIR=/data
VOLUME ["/data"]
COPY --from=build /opt/agent-net /opt/agent-net
USER 10001:10001
WORKDIR /home/agentnet
EXPOSE 9876
# Healthy once the worker serves snapshots (/readyz is 503 until the first one exists).
# python + urllib: the slim image has no curl or wget.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('WORKER_PORT', '9876'), timeout=4)"]
# Exec form: SIGTERM reaches the worker itself, which unregisters and exits.
CMD ["python", "-m", "worker"]
