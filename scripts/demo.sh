#!/usr/bin/env bash
# The scripted journey on the bundled sample market, replayed on the morning of 2021-06-09 (UTC):
# scan finds a Rescue Forces signal → plan → validate → execute (dry-run) → status → the monitor
# trails the stop and closes at the target → the books → a backtest of the strategy over June. Every
# step names its market time with --as-of, so the output is the same on every run (only the random ids
# differ).
# Uses a fresh database in demo-data/ so it never touches your own. No network, no API keys.
# ROBSON_DB may name another file, or a database URL (PostgreSQL): a URL is used as it is (nothing is made
# or removed on disk), so give it an empty database to see the output below.
set -euo pipefail
cd "$(dirname "$0")/.."
export ROBSON_DB="${ROBSON_DB:-$PWD/demo-data/demo.db}"
# Piped, as under cron: one-line summaries and 160-column tables, the same in a terminal as in README.md.
export NO_COLOR=1 COLUMNS="${COLUMNS:-160}"
if [[ "$ROBSON_DB" != *://* ]]; then
  mkdir -p "$(dirname "$ROBSON_DB")"
  rm -f "$ROBSON_DB" "$ROBSON_DB-wal" "$ROBSON_DB-shm"
fi

step() { printf '\n$ %s\n' "$*"; }
run() { step robson "$@"; robson "$@" | cat; }
last_id() { python -c "import json,sys; print(json.load(sys.stdin)['$1'][-1]['id'])"; }

# 05:15 candle: MA4 crosses above MA9 on more than 3 × average volume; the next close confirms it.
run --as-of 2021-06-09T05:30 scan --strategy rescue-forces --symbols BTCUSDT --no-entry
run --as-of 2021-06-09T05:45 scan --strategy rescue-forces --symbols BTCUSDT --no-entry

run --as-of 2021-06-09T05:45 plan buy BTCUSDT --strategy rescue-forces
ID=$(robson plan list --status PENDING --json | last_id intents)
run --as-of 2021-06-09T05:45 validate "$ID"
run --as-of 2021-06-09T05:45 execute "$ID"
run --as-of 2021-06-09T05:45 operation status

# One span of profit lifts the stop above the entry (hand-span trailing); then the target fills.
run --as-of 2021-06-09T07:00 monitor --once
run --as-of 2021-06-09T10:45 monitor --once
run report

# Would it have worked all June? The same rules, replayed: every signal, sized, guarded, walked to its exit.
run backtest --strategy rescue-forces --symbols BTCUSDT --from 2021-06-01 --to 2021-07-01 --trades 5
