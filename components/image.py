"""The project image every component runs in (built from serving/Dockerfile's base stage)."""

IMAGE = "ghcr.io/medopt/medopt:0.1.0"
