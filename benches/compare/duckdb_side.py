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
import time

import duckdb

glob, start_us, end_us, runs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

con = duckdb.connect()
con.execute(f"SET threads = {threads}")
t0 = time.perf_counter()
con.execute(f"CREATE TABLE events AS SELECT * FROM read_parquet('{glob}')")
load_s = time.perf_counter() - t0
rows = con.execute("SELECT count(*) FROM events").fetchone()[0]

NEW = "CASE WHEN NOT coalesce(refunded, false) AND NOT coalesce(renewal, false) THEN amount ELSE 0 END"
RENEWAL = "CASE WHEN NOT coalesce(refunded, false) AND coalesce(renewal, false) THEN amount ELSE 0 END"
REFUND = "CASE WHEN coalesce(refunded, false) THEN amount ELSE 0 END"
PAID = "CASE WHEN NOT coalesce(refunded, false) THEN amount ELSE 0 END"


def overview_sql(where_range: str, selection: str | None) -> str:
    """Session metrics over every event of a selected session in the range; revenue of
    selected visitors' payments in the range (DESIGN §4). Without a selection the semi-joins
    are left out, as Tally's plans leave them out."""
    if selection is None:
        sessions = "base"
        payments = "base"
        visitors = "SELECT DISTINCT visitor_hash FROM base"
    else:
        sessions = "base b SEMI JOIN sel USING (visitor_hash, session_hash)"
        payments = "base SEMI JOIN sv USING (visitor_hash)"
        visitors = "SELECT DISTINCT visitor_hash FROM sel"
    return f"""
    WITH base AS (SELECT * FROM events WHERE {where_range}),
    sel AS (SELECT DISTINCT visitor_hash, session_hash FROM base WHERE {selection or 'true'}),
    s AS (
      SELECT visitor_hash, session_hash, max(ts) - min(ts) AS dur,
             count(*) FILTER (WHERE kind = 'pageview') AS pv,
             count(*) FILTER (WHERE kind = 'goal') AS goals
      FROM {sessions}
      GROUP BY ALL),
    sv AS ({visitors}),
    rev AS (
      SELECT sum({NEW}) AS new, sum({RENEWAL}) AS renewal, sum({REFUND}) AS refund,
             count(DISTINCT visitor_hash) FILTER (WHERE NOT coalesce(refunded, false)) AS paying
      FROM {payments} WHERE kind = 'payment')
    SELECT (SELECT count(*) FROM sv) AS visitors, count(*) AS sessions,
           sum(CASE WHEN pv = 1 AND goals = 0 THEN 1 ELSE 0 END) AS bounced,
           avg(epoch_us(TIMESTAMP '1970-01-01' + dur)) AS avg_us,
           any_value(rev.new), any_value(rev.renewal), any_value(rev.refund), any_value(rev.paying)
    FROM s, rev
    """


QUESTIONS = {
    "overview, all time": [overview_sql("true", None)],
    "countries, all time, top 10": [f"""
      WITH pairs AS (SELECT DISTINCT country_code, visitor_hash FROM events WHERE country_code IS NOT NULL),
      rev AS (SELECT visitor_hash, sum({PAID}) AS r FROM events WHERE kind = 'payment' GROUP BY 1)
      SELECT country_code, count(*) AS visitors, coalesce(sum(r), 0) AS revenue
      FROM pairs LEFT JOIN rev USING (visitor_hash)
      GROUP BY 1 ORDER BY visitors DESC, country_code LIMIT 10"""],
    "timeseries, 30 days by day (New York), country is US,CA, device is_not mobile": [
        f"""
      WITH base AS (SELECT *, date_trunc('day', timezone('America/New_York', ts)) AS d
                    FROM events WHERE ts >= make_timestamp({start_us}) AND ts < make_timestamp({end_us})),
      sel AS (SELECT * FROM base WHERE country_code IN ('US', 'CA') AND (device IS NULL OR device <> 'mobile')),
      b AS (SELECT d, count(DISTINCT visitor_hash) AS visitors, count(DISTINCT session_hash) AS sessions FROM sel GROUP BY d),
      selv AS (SELECT DISTINCT d, visitor_hash FROM sel),
      r AS (SELECT d, sum({NEW}) AS new, sum({RENEWAL}) AS renewal
            FROM base SEMI JOIN selv USING (d, visitor_hash) WHERE kind = 'payment' GROUP BY d)
      SELECT b.d, visitors, sessions, coalesce(new, 0), coalesce(renewal, 0) FROM b LEFT JOIN r USING (d) ORDER BY b.d""",
        overview_sql(
            f"ts >= make_timestamp({start_us}) AND ts < make_timestamp({end_us})",
            "country_code IN ('US', 'CA') AND (device IS NULL OR device <> 'mobile')",
        ),
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
