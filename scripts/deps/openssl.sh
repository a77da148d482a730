#!/usr/bin/env bash
# The webhook tests generate their TLS certificates with the openssl CLI (usually present on
# Debian; installed from apt when not). Prints nothing when already there.
set -euo pipefail
command -v openssl >/dev/null && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends openssl >/dev/null
echo "openssl $(openssl version) installed"
