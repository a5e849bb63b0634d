#!/usr/bin/env bash
# `tally import` beside DuckDB's NDJSON reader on the same generated file (benches/README.md).
# Usage: benches/import.sh [EVENTS]   (default 4000000)
# Writes the file once under the target directory (tally_benches::ndjson_line, about 275 bytes an
# event), then times each whole process: a fresh data directory, website, import and flush for
# Tally; DuckDB (installed into a virtual environment, 2 threads) reading the same file into an
# in-memory table, into a database file (then CHECKPOINT), and into one zstd Parquet file.
# Prints each one's wall time, CPU time and peak RSS, and Tally's time over each of DuckDB's.
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
# Runs a command under /usr/bin/time; prints its output and "<wall s> s wall, <user s> s user,
# <system s> s system, <KiB> KiB peak RSS", and leaves the wall time in $wall. Writes still
# waiting for the disk (DuckDB's Parquet file is not fsynced) are flushed first, so that no
# load pays for the one before it.
measure() {
  local out
  sync
  out="$(/usr/bin/time -f "%e s wall, %U s user, %S s system, %M KiB peak RSS" "$@" 2>&1 | grep -v "transaction id")"
  echo "$out"
  wall="$(echo "$out" | tail -n 1 | cut -d' ' -f1)"
}
# DuckDB's load: into an in-memory table, a database file (then CHECKPOINT), or a Parquet file.
cat > "$dir/duckdb_load.py" <<'PY'
import duckdb, sys
file, how, out = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect(out if how == "database" else ":memory:")
con.execute("SET threads=2")
read = f"read_json('{file}', format='newline_delimited')"
if how == "parquet":
    con.execute(f"COPY (SELECT * FROM {read}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
    print(con.execute(f"SELECT count(*) FROM '{out}'").fetchone()[0], "rows")
else:
    con.execute(f"CREATE TABLE events AS SELECT * FROM {read}")
    if how == "database":
        con.execute("CHECKPOINT")
    print(con.execute("SELECT count(*) FROM events").fetchone()[0], "rows")
PY
duckdb=("$venv/bin/python" "$dir/duckdb_load.py" "$file")
echo "tally import:"
measure "$tally" --data-dir "$dir/data" import --website "$site" "$file"
tally_wall="$wall"
ratio() { "$venv/bin/python" -c "import sys; print(f'Tally at {float(sys.argv[1]) / float(sys.argv[2]):.2f}x its time')" "$tally_wall" "$wall"; }
echo "duckdb read_json into an in-memory table:"
measure "${duckdb[@]}" memory -
ratio
echo "duckdb read_json into a database file, then CHECKPOINT:"
measure "${duckdb[@]}" database "$dir/events.duckdb"
ratio
echo "duckdb read_json copied to a zstd Parquet file:"
measure "${duckdb[@]}" parquet "$dir/events.parquet"
ratio
