#!/usr/bin/env bash
# Creates (once) the shared dependency environment keyed by the hash of requirements.lock, then a thin per-clone
# .venv that sees those dependencies plus this clone's src/ and exposes the `medopt` console script.
# Why: the torch CUDA build makes an environment ~6.5 GB and ~2 min to create; clones share one per lock hash.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${MEDOPT_CACHE:-$HOME/.cache/medopt}"
py="${PYTHON:-python3}"
hash="$(sha256sum "$repo/requirements.lock" | cut -c1-12)"
deps="$cache/env-$hash"

if [ ! -f "$deps/.complete" ]; then
  echo "medopt: creating dependency environment $deps (one time, a few minutes)" >&2
  mkdir -p "$cache"
  rm -rf "$deps"
  "$py" -m venv "$deps"
  "$deps/bin/pip" install --quiet -r "$repo/requirements.lock"
  touch "$deps/.complete"
fi

site="$("$deps/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
venv="$repo/.venv"
if [ ! -x "$venv/bin/python" ] || ! grep -qs "$site" "$venv/medopt-deps"; then
  rm -rf "$venv"
  "$deps/bin/python" -m venv --without-pip "$venv"
  vsite="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  printf 'import site; site.addsitedir(%s)\n' "'$site'" > "$vsite/00-medopt-deps.pth"
  # src/ for the medopt package, the repo root for the KFP `components` and `pipelines` packages.
  printf '%s\n%s\n' "$repo/src" "$repo" > "$vsite/medopt-src.pth"
  printf '%s\n' "$site" > "$venv/medopt-deps"
  cat > "$venv/bin/medopt" <<PY
#!$venv/bin/python
import sys
from medopt.cli import main
sys.exit(main())
PY
  chmod +x "$venv/bin/medopt"
fi
bash "$repo/scripts/setup-k8s-tools.sh"
