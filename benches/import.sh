#!/usr/bin/env bash
# `tally import` beside DuckDB's NDJSON reader on the same generated file (benches/README.md).
# Usage: benches/import.sh [EVENTS]   (default 4000000)
# Writes the file once under the target directory (tally_benches::ndjson_line, about 275 bytes an
# event), then times each whole process: a fresh data directory, website, import and flush for
# Tally; a 2-thread in-memory table for DuckDB (installed into a virtual environment).
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-4000000}"
target="${CARGO_TARGET_DIR:-target}"
venv="$target/compare-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "duckdb==1.4.2"
fi
cargo build --release -p tally-server -p tally-benches --bin tally --bin gen_ndjson
# g2: tally_core::synthetic::GENERATION, so that a file of an older generator is not reused.
file="$target/compare/events-$n-g2.ndjson"
mkdir -p "$target/compare"
[ -f "$file" ] || "$target/release/gen_ndjson" "$n" "$file"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
tally="$target/release/tally"
site="$("$tally" --data-dir "$dir/data" website create --domain example.com |
  "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["websiteId"])')"
measure() { /usr/bin/time -f "%e s wall, %M KiB peak RSS" "$@"; }
echo "tally import:"
measure "$tally" --data-dir "$dir/data" import --website "$site" "$file" 2>&1 | grep -v "transaction id"
echo "duckdb read_json into a table:"
measure "$venv/bin/python" -c '
import duckdb, sys
con = duckdb.connect()
con.execute("SET threads=2")
con.execute(f"CREATE TABLE events AS SELECT * FROM read_json(\x27{sys.argv[1]}\x27, format=\x27newline_delimited\x27)")
print(con.execute("SELECT count(*) FROM events").fetchone()[0], "rows")
' "$file"
