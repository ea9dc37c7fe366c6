#!/bin/sh
# Build built-in models: sh scripts/models/build.sh [--dry-run] NAME... (from the repository root).
# The driver and the per-model configs: scripts/models/build.py, scripts/models/<NAME>.toml.
exec ${PY:-python} scripts/models/build.py "$@"
