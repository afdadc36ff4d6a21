#!/usr/bin/env bash
# Makes sure node (20 or newer, for its built-in test runner) and npm are installed for the e2e suite.
set -euo pipefail

sudo=()
if [[ $EUID -ne 0 ]]; then sudo=(sudo); fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if ((major < 20)); then
  echo "ensure-node: node $(node --version) is too old; the e2e suite needs node 20 or newer" >&2
  exit 1
fi
