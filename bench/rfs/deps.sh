#!/usr/bin/env bash
# Packages needed by the rfs benchmark (Debian 12), installed only when missing: bindfs (a FUSE
# reference) and rsync (the full-reintegration reference, resync.sh), with the project's own
# (fuse3, libfuse3-dev for passthrough_ll, tar...).
set -euo pipefail
exec bash "$(dirname "$0")/../../scripts/deps.sh" bindfs rsync
