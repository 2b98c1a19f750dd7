#!/usr/bin/env bash
# The scripted journey on the bundled sample market: plan → validate → execute (dry-run) → status.
# Uses a fresh database in demo-data/ so it never touches your own. No network, no API keys.
set -euo pipefail
cd "$(dirname "$0")/.."
export ROBSON_DB="${ROBSON_DB:-$PWD/demo-data/demo.db}"
export NO_COLOR=1 COLUMNS="${COLUMNS:-120}"
mkdir -p "$(dirname "$ROBSON_DB")"
rm -f "$ROBSON_DB" "$ROBSON_DB-wal" "$ROBSON_DB-shm"

step() { printf '\n$ %s\n' "$*"; }

step robson plan buy BTCUSDT --strategy all-in
robson plan buy BTCUSDT --strategy all-in
ID=$(robson plan list --status PENDING --json | python -c 'import json,sys; print(json.load(sys.stdin)["intents"][-1]["id"])')

step robson validate "$ID"
robson validate "$ID"

step robson execute "$ID"
robson execute "$ID"

step robson operation status
robson operation status
