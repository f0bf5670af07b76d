#!/bin/bash
# The README's test command: installs dependencies, builds, and runs every test (as root: the
# integration tests create network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
cd build
ctest --output-on-failure --timeout 900
