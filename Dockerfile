# One image for the three Dagster roles (see README "Running in a container"):
#   code server: dagster code-server start -h 0.0.0.0 -p 4000 -m billing_assets.definitions
#   webserver:   dagster-webserver -h 0.0.0.0 -p 3000 -w /opt/dagster/app/workspace.yaml
#   daemon:      dagster-daemon run -w /opt/dagster/app/workspace.yaml
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DAGSTER_HOME=/opt/dagster/home

RUN useradd --create-home --uid 10001 billing \
    && mkdir -p /opt/dagster/app /opt/dagster/home \
    && chown -R billing:billing /opt/dagster

WORKDIR /opt/dagster/app

# dependencies first, pinned, so a source change reuses this layer
COPY requirements.lock ./
RUN pip install -r requirements.lock

COPY pyproject.toml README.md workspace.yaml ./
COPY billing_assets ./billing_assets
RUN pip install --no-deps . \
    && cp workspace.yaml /opt/dagster/home/workspace.yaml

# credentials come from the runtime (env, IAM role); none are baked in
COPY --chown=billing:billing dagster.yaml /opt/dagster/home/dagster.yaml
USER billing
EXPOSE 3000 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "billing_assets.definitions"]
