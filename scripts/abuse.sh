#!/usr/bin/env bash
# Replays hostile-client attacks against a fresh announce server each, on
# loopback, and prints one table (attack, load sent, RSS before/after,
# /healthz during/after, data lost). Bounded: a few minutes in all.
# Usage: scripts/abuse.sh [-gets N] [-ws N]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
go build -o bin/announce .
ulimit -n 20000 2>/dev/null || true
exec go run ./scripts/abuse -bin bin/announce "$@"
