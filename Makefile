# The two set-up commands of the README. Both create the environment on first use (scripts/setup-env.sh).
.PHONY: env quickstart test

env:
	@bash scripts/setup-env.sh

quickstart: env
	.venv/bin/medopt run configs/quickstart.yaml

test: env
	.venv/bin/python -m pytest -q -n 2 --dist loadgroup

# Images (Dockerfile, Dockerfile.cuda, serving/Dockerfile) and a local kind cluster running them (scripts/kind-up.sh).
IMAGE_REPO ?= ghcr.io/medopt
VERSION ?= 0.1.0
BASE_IMAGES ?= python:3.11-slim-bookworm nvidia/cuda:13.0.1-runtime-ubuntu24.04
.PHONY: images kind-up pin-images

images:
	docker build -t $(IMAGE_REPO)/medopt:$(VERSION) -f Dockerfile .
	docker build -t $(IMAGE_REPO)/medopt-cuda:$(VERSION) -f Dockerfile.cuda .
	docker build -t $(IMAGE_REPO)/medopt-serve:$(VERSION) -f serving/Dockerfile .

kind-up:
	IMAGE_REPO=$(IMAGE_REPO) VERSION=$(VERSION) bash scripts/kind-up.sh

# Prints each base tag's current digest; paste it after the tag's '@sha256:' in the Dockerfiles' FROM lines.
pin-images:
	@for tag in $(BASE_IMAGES); do \
	  printf '%s@%s\n' "$$tag" "$$(docker buildx imagetools inspect "$$tag" --format '{{json .Manifest.Digest}}' | tr -d '"')"; \
	done
