# The serving image referenced by deploy/k8s. Built from the same pinned lock as `make setup`.
FROM python:3.11-slim
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*
COPY requirements.lock pyproject.toml Makefile ./
COPY setlist setlist
COPY ingest ingest
COPY feature_repo feature_repo
COPY training training
COPY validation validation
COPY serving serving
COPY protos protos
COPY bench bench
# python -m ops settings|status in a pod (docs/production.md)
COPY ops ops
# make setup generates the gRPC code with scripts/protogen.py
COPY scripts scripts
# the files the settings default to (SETLIST_TIERS_FILE, SETLIST_COST_FILE, SETLIST_SLO_FILE), at the
# same relative paths as in a clone: Track's tiers, `ops cost`'s prices, `ops status`'s SLOs
COPY tiers.yaml cost.yaml ./
COPY deploy/prometheus/slo.yaml deploy/prometheus/slo.yaml
RUN touch README.md && make setup PYTHON=python3.11
ENV PYTHONPATH=/app SETLIST_PROFILE=production
EXPOSE 50051 9464
USER nobody
ENTRYPOINT [".venv/bin/python", "-m", "serving"]
