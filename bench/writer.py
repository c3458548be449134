#!/usr/bin/env python3
"""Write continuously through an endpoint and record which writes were acknowledged.

Each write is its own connection (as a client behind a failover would see it), with a short
connect timeout. Prints one JSON object: acknowledged ids with their times, and errors.
Bounded by --seconds; traffic goes only to the --host given (a lab address).
"""
import argparse, json, sys, time

import psycopg2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=6432)
    ap.add_argument("--dbname", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--verify", action="store_true", help="read acked seqs as JSON on stdin; print the missing ones")
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--run", required=True, help="run label stored with each row")
    a = ap.parse_args()
    password = open(a.password_file).read().rstrip("\n")
    if a.verify:
        want = set(json.load(sys.stdin))
        conn = psycopg2.connect(host=a.host, port=a.port, dbname=a.dbname, user=a.user, password=password, connect_timeout=3)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT seq FROM drill_writes WHERE run = %s", (a.run,))
            have = {r[0] for r in cur.fetchall()}
        json.dump(sorted(want - have), sys.stdout)
        return
    acked, errors = [], []
    seq, t0 = 0, time.time()
    while time.time() - t0 < a.seconds:
        seq += 1
        start = time.time()
        try:
            conn = psycopg2.connect(host=a.host, port=a.port, dbname=a.dbname, user=a.user, password=password,
                                    connect_timeout=1)
            try:
                with conn, conn.cursor() as cur:
                    cur.execute("SET LOCAL statement_timeout = 2000")  # PgBouncer refuses the options startup parameter
                    cur.execute("CREATE TABLE IF NOT EXISTS drill_writes (run text, seq int, at timestamptz default now(), PRIMARY KEY (run, seq))")
                    cur.execute("INSERT INTO drill_writes (run, seq) VALUES (%s, %s)", (a.run, seq))
                acked.append([seq, round(time.time() - t0, 3)])
            finally:
                conn.close()
        except Exception as e:  # every failure is data: the outage window
            errors.append([seq, round(start - t0, 3), str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__])
        time.sleep(max(0.0, a.interval - (time.time() - start)))
    json.dump({"run": a.run, "attempts": seq, "acked": acked, "errors": errors}, sys.stdout)


if __name__ == "__main__":
    main()
