#!/usr/bin/env bash
# The local stand-ins for node:24-slim and debian:bookworm-slim that the container image tests build
# on (scripts/images/build-base.sh; cached, prints nothing when current). Needs podman first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bash "$root/scripts/deps/podman.sh"
bash "$root/scripts/images/build-base.sh"
