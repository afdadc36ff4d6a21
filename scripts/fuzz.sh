#!/usr/bin/env bash
# Runs every Fuzz target in the module for a short while (FUZZTIME, default 10s), one target at a time,
# since go test accepts -fuzz for a single target in a single package.
set -euo pipefail

fuzztime=${FUZZTIME:-10s}
pkgs=$(go list ./...)
found=0
for pkg in $pkgs; do
  listed=$(go test -list '^Fuzz' "$pkg")
  for target in $(grep '^Fuzz' <<<"$listed" || true); do
    found=$((found + 1))
    echo "fuzz: $pkg $target for $fuzztime"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
  done
done
echo "fuzz: ran $found target(s)"
