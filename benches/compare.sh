#!/usr/bin/env bash
# Tally beside DuckDB on the same generated events, in one run (benches/README.md).
# Usage: benches/compare.sh [EVENTS]   (default 4000000)
# Installs the duckdb Python package into a virtual environment under the target directory.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
venv="$target/compare-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "duckdb==1.4.2"
fi
export TALLY_COMPARE_PYTHON="$venv/bin/python"
export TALLY_COMPARE_DIR="${TALLY_COMPARE_DIR:-$target/compare}"
cargo run --release -p tally-benches --bin compare -- "${1:-4000000}"
