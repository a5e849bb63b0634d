#!/usr/bin/env bash
# The SIGKILL crash test at full size: tracker clients post page views with distinct visitor
# ids while `tally serve` is killed and restarted ROUNDS times; every acknowledged event must
# be stored afterwards. Usage: benches/crash.sh [ROUNDS] [CLIENTS]   (defaults 20 and 4)
set -euo pipefail
cd "$(dirname "$0")/.."
TALLY_CRASH_ROUNDS="${1:-20}" TALLY_CRASH_CLIENTS="${2:-4}" \
    cargo test -p tally-server --test it crash::every_acknowledged_event_survives_sigkill \
    -- --nocapture 2>&1 | grep -E "crash test seed|kills|stored after|lost|test result"
