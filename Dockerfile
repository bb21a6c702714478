# The project image: every KFP component (components/) runs in it, as a non-root user.
# Build: docker build -t ghcr.io/medopt/medopt:0.1.0 .
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 FLWR_TELEMETRY_ENABLED=0
RUN useradd --create-home --uid 10001 medopt
WORKDIR /opt/medopt
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
RUN pip install --no-deps . && python -c "import medopt, components, pipelines"
USER 10001
WORKDIR /home/medopt
ENTRYPOINT ["medopt"]
