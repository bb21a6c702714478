# syntax=docker/dockerfile:1
# The project image (CPU): every KFP component (components/) and Ray worker runs in it, as non-root uid 10001.
# Build: make images   (or: docker build -t ghcr.io/medopt/medopt:0.1.0 .)
#
# Base, pinned by digest (tag kept beside it). The digest is the python:3.11-slim-bookworm manifest list recorded
# as registry-verified in a public ADR ("Immutable worker-container publication and attestation", 2026-08-24).
# Refresh it with `make pin-images`, i.e. `docker buildx imagetools inspect python:3.11-slim-bookworm`, and
# replace the sha256 here, in serving/Dockerfile and in Dockerfile.cuda's builder stage.
FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS builder
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
COPY requirements.lock ./
# requirements.lock pins torch/torchvision as published on PyPI, which is the CUDA build (~4 GB of nvidia-* wheels).
# This image is for CPUs: the same two versions come from the PyTorch CPU index (they install as 2.14.1+cpu, which
# `torch==2.14.1` accepts), and the CUDA-only pins (nvidia-*, cuda-*, triton) are left out of the second step.
# Every other package comes from PyPI at its requirements.lock pin. Dockerfile.cuda keeps the CUDA build.
RUN grep -E '^(torch|torchvision)==' requirements.lock > torch-cpu.txt \
 && pip install --index-url https://download.pytorch.org/whl/cpu -r torch-cpu.txt \
 && grep -vE '^(torch|torchvision|triton|nvidia-[A-Za-z0-9_.-]+|cuda-[A-Za-z0-9_.-]+)==' requirements.lock > rest.txt \
 && pip install -r rest.txt \
 && python -c "import torch; assert torch.version.cuda is None, torch.version.cuda"
COPY pyproject.toml README.md ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
RUN pip install --no-deps . && python -c "import medopt, components, pipelines"

FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 FLWR_TELEMETRY_ENABLED=0 PATH=/opt/venv/bin:$PATH
RUN useradd --create-home --uid 10001 --user-group medopt
COPY --from=builder /opt/venv /opt/venv
USER 10001
WORKDIR /home/medopt
ENTRYPOINT ["medopt"]
