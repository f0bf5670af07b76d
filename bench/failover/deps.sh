#!/usr/bin/env bash
# Packages needed by the failover benchmark (Debian 12), installed only when
# missing: keepalived (the product compared with Halo) and stress-ng (the
# "no false failover under stress" run), with the project's own.
set -euo pipefail
exec bash "$(dirname "$0")/../../scripts/deps.sh" keepalived stress-ng
