#!/usr/bin/env bash
# The main job on real input: installs everything, then imports a real tree
# into a fresh store, snapshots, edits, branches, diffs, exports both
# snapshots and verifies them byte for byte, and prints stats.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
node packages/cli/dist/demo.js "$@"
