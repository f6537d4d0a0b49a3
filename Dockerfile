# One image, three roles (README "Operations"); the command picks the role:
#   code server: dagster code-server start -h 0.0.0.0 -p 4000 -m billing_assets.definitions   (default)
#   webserver:   dagster-webserver -h 0.0.0.0 -p 3000 -w /opt/dagster/home/workspace.yaml
#   daemon:      dagster-daemon run -w /opt/dagster/home/workspace.yaml
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home

RUN groupadd --gid 10001 billing \
    && useradd --create-home --uid 10001 --gid 10001 billing \
    && mkdir -p /opt/dagster/app /opt/dagster/home \
    && chown -R billing:billing /opt/dagster

WORKDIR /opt/dagster/app

# the runtime lock first, every version pinned and no resolution, so a source change reuses
# this layer; development tools (pytest, selenium) are in requirements-dev.lock only
COPY requirements.lock ./
RUN pip install --no-deps -r requirements.lock

COPY pyproject.toml README.md ./
COPY billing_assets ./billing_assets
RUN pip install --no-deps .

# the production instance (Postgres, queued runs, S3 compute logs) and the gRPC workspace;
# credentials come from the runtime (environment, IAM role, Kubernetes secrets), none baked in
COPY --chown=billing:billing deploy/dagster.yaml deploy/workspace.yaml /opt/dagster/home/
USER 10001:10001
EXPOSE 3000 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "billing_assets.definitions"]
