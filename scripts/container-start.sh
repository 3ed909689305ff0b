#!/bin/sh
# The Pushbox image's entrypoint: each container writes its metrics to a directory of
# its own (PROMETHEUS_MULTIPROC_DIR, under the shared /metrics volume that GET
# /metrics reads whole), emptied when the container starts; then the command runs.
set -eu
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
  rm -rf "$PROMETHEUS_MULTIPROC_DIR"
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi
exec "$@"
