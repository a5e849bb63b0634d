"""DuckDB's side of the comparison harness (benches/README.md, "Tally beside DuckDB").

Loads the very Parquet segments Tally wrote (the same events, with the sessions Tally's ingest
assigned) into an in-memory DuckDB table, asks the four questions with DESIGN §4's definitions,
and prints one JSON object: per question the median time of the hot runs and the answer, so the
Rust side can check that both engines agree.

Usage: python duckdb_side.py SEGMENT_GLOB START_US END_US RUNS THREADS
"""

import json
import statistics
import sys
import tempfile
import time

import duckdb

glob, start_us, end_us, runs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

con = duckdb.connect()
con.execute(f"SET threads = {threads}")
# Spill files (large data sets) go to a temporary folder, not the working directory.
con.execute(f"SET temp_directory = '{tempfile.mkdtemp(prefix='tally-compare-duckdb-')}'")
t0 = time.perf_counter()
con.execute(f"CREATE TABLE events AS SELECT * FROM read_parquet('{glob}')")
load_s = time.perf_counter() - t0
rows = con.execute("SELECT count(*) FROM events").fetchone()[0]

NEW = "CASE WHEN NOT coalesce(refunded, false) AND NOT coalesce(renewal, false) THEN amount ELSE 0 END"
RENEWAL = "CASE WHEN NOT coalesce(refunded, false) AND coalesce(renewal, false) THEN amount ELSE 0 END"
REFUND = "CASE WHEN coalesce(refunded, false) THEN amount ELSE 0 END"
PAID = "CASE WHEN NOT coalesce(refunded, false) THEN amount ELSE 0 END"


def overview_sql(where_range: str, selection: str | None) -> list[str]:
    """Two queries: session metrics over every event of a selected session in the range, and
    revenue of selected visitors' payments in the range (DESIGN §4). A session is selected when
    one of its events in the range is (`bool_or`)."""
    having = "" if selection is None else f"HAVING bool_or({selection})"
    payers = "" if selection is None else (
        f"AND visitor_hash IN (SELECT visitor_hash FROM events WHERE {where_range} AND {selection})")
    return [f"""
    SELECT count(DISTINCT visitor_hash) AS visitors, count(*) AS sessions,
           sum(CASE WHEN pv = 1 AND goals = 0 THEN 1 ELSE 0 END) AS bounced,
           avg(last_us - first_us) AS avg_us
    FROM (SELECT visitor_hash, session_hash,
                 min(epoch_us(ts)) AS first_us, max(epoch_us(ts)) AS last_us,
                 count(*) FILTER (WHERE kind = 'pageview') AS pv,
                 count(*) FILTER (WHERE kind = 'goal') AS goals
          FROM events WHERE {where_range} GROUP BY visitor_hash, session_hash {having})""", f"""
    SELECT sum({NEW}), sum({RENEWAL}), sum({REFUND}),
           count(DISTINCT visitor_hash) FILTER (WHERE NOT coalesce(refunded, false))
    FROM events WHERE {where_range} AND kind = 'payment' {payers}"""]


RANGE = f"ts >= make_timestamp({start_us}) AND ts < make_timestamp({end_us})"
SELECTION = "country_code IN ('US', 'CA') AND (device IS NULL OR device <> 'mobile')"

QUESTIONS = {
    "overview, all time": overview_sql("true", None),
    "countries, all time, top 10": [f"""
      WITH pairs AS (SELECT DISTINCT country_code, visitor_hash FROM events WHERE country_code IS NOT NULL),
      rev AS (SELECT visitor_hash, sum({PAID}) AS r FROM events WHERE kind = 'payment' GROUP BY 1)
      SELECT country_code, count(*) AS visitors, coalesce(sum(r), 0) AS revenue
      FROM pairs LEFT JOIN rev USING (visitor_hash)
      GROUP BY 1 ORDER BY visitors DESC, country_code LIMIT 10"""],
    "timeseries, 30 days by day (New York), country is US,CA, device is_not mobile": [
        f"""
      WITH sel AS (SELECT date_trunc('day', timezone('America/New_York', ts)) AS d, visitor_hash, session_hash
                   FROM events WHERE {RANGE} AND {SELECTION}),
      b AS (SELECT d, count(DISTINCT visitor_hash) AS visitors, count(DISTINCT session_hash) AS sessions FROM sel GROUP BY d),
      r AS (SELECT date_trunc('day', timezone('America/New_York', ts)) AS d, sum({NEW}) AS new, sum({RENEWAL}) AS renewal
            FROM events WHERE {RANGE} AND kind = 'payment'
              AND (date_trunc('day', timezone('America/New_York', ts)), visitor_hash) IN (SELECT d, visitor_hash FROM sel)
            GROUP BY 1)
      SELECT b.d, visitors, sessions, coalesce(new, 0), coalesce(renewal, 0) FROM b LEFT JOIN r USING (d) ORDER BY b.d""",
        *overview_sql(RANGE, SELECTION),
    ],
    "pages, filter_page=contains:/blog": [f"""
      WITH pairs AS (SELECT hostname, path, visitor_hash, count(*) AS n FROM events
                     WHERE hostname IS NOT NULL AND path IS NOT NULL AND contains(lower(path), '/blog')
                     GROUP BY ALL),
      rev AS (SELECT visitor_hash, sum({PAID}) AS r FROM events WHERE kind = 'payment' GROUP BY 1)
      SELECT hostname, path, count(*) AS visitors, coalesce(sum(r), 0) AS revenue
      FROM pairs LEFT JOIN rev USING (visitor_hash)
      GROUP BY ALL ORDER BY visitors DESC, hostname, path LIMIT 100"""],
}

out = {"rows": rows, "load_s": load_s, "threads": threads, "questions": {}}
for name, sqls in QUESTIONS.items():
    times = []
    answers = None
    for i in range(runs + 1):
        t = time.perf_counter()
        answers = [con.execute(sql).fetchall() for sql in sqls]
        if i > 0:  # the first run warms up
            times.append((time.perf_counter() - t) * 1000)
    out["questions"][name] = {
        "median_ms": statistics.median(times),
        "answer": json.loads(json.dumps(answers, default=str)),
    }
print(json.dumps(out))
