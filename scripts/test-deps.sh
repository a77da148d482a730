#!/usr/bin/env bash
# Installs what the test suite needs beyond npm packages (Python venvs, helm, Chromium, ...).
# Each scripts/deps/*.sh is idempotent and caches its result, so a warm run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
for dep in scripts/deps/*.sh; do
  start=$(date +%s)
  bash "$dep"
  echo "test-deps: $(basename "$dep") ready in $(( $(date +%s) - start ))s"
done
