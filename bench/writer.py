#!/usr/bin/env python3
"""Write continuously through an endpoint and record which writes were acknowledged.

Each write is its own connection (as a client behind a failover would see it), with a short
connect timeout; or, with --persistent, one connection kept for as long as it works, as an
application's pool keeps it, with a client-side timeout per write (--timeout, Npgsql's default
command timeout is 30 s), reconnecting after a failure. Prints one JSON object: acknowledged ids
with their times, and errors.
Bounded by --seconds, or ended early by SIGTERM (it then finishes the write in progress and prints as
usual); traffic goes only to the --host given (a lab address).
"""
import argparse, json, select, signal, sys, time

import psycopg2
import psycopg2.extensions

_deadline = [None]


def _wait_with_deadline(conn):
    """psycopg2 wait callback: like the default, but gives up at _deadline (a client-side timeout)."""
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        left = None if _deadline[0] is None else _deadline[0] - time.time()
        if left is not None and left <= 0:
            raise psycopg2.OperationalError("client-side timeout")
        fd = conn.fileno()
        if state == psycopg2.extensions.POLL_READ:
            select.select([fd], [], [], left)
        elif state == psycopg2.extensions.POLL_WRITE:
            select.select([], [fd], [], left)


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
    ap.add_argument("--persistent", action="store_true", help="keep one connection, reconnect only after a failure")
    ap.add_argument("--timeout", type=float, default=30.0, help="client-side timeout of one write with --persistent (s)")
    a = ap.parse_args()
    password = open(a.password_file).read().rstrip("\n")
    if a.verify:
        want = set(json.load(sys.stdin))
        # the VIP may be moving right after a drill: try for up to a minute before giving up
        for attempt in range(20):
            try:
                conn = psycopg2.connect(host=a.host, port=a.port, dbname=a.dbname, user=a.user, password=password, connect_timeout=3)
                break
            except psycopg2.OperationalError:
                if attempt == 19:
                    raise
                time.sleep(1)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT seq FROM drill_writes WHERE run = %s", (a.run,))
            have = {r[0] for r in cur.fetchall()}
        json.dump(sorted(want - have), sys.stdout)
        return
    acked, errors = [], []
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    seq, t0 = 0, time.time()
    # for a caller that waits until the writer really writes (Python's start-up takes seconds on a loaded host)
    print("writer: started", file=sys.stderr, flush=True)
    if a.persistent:
        psycopg2.extensions.set_wait_callback(_wait_with_deadline)
        conn = None
        while not stop and time.time() - t0 < a.seconds:
            seq += 1
            start = time.time()
            _deadline[0] = start + a.timeout
            try:
                if conn is None:
                    conn = psycopg2.connect(host=a.host, port=a.port, dbname=a.dbname, user=a.user, password=password, connect_timeout=1)
                    conn.autocommit = True
                    with conn.cursor() as cur:
                        cur.execute("CREATE TABLE IF NOT EXISTS drill_writes (run text, seq int, at timestamptz default now(), PRIMARY KEY (run, seq))")
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO drill_writes (run, seq) VALUES (%s, %s)", (a.run, seq))
                acked.append([seq, round(time.time() - t0, 3)])
            except Exception as e:  # the connection is gone or timed out: drop it, reconnect on the next write
                errors.append([seq, round(start - t0, 3), (str(e).strip().splitlines() or [type(e).__name__])[0][:120]])
                try:
                    conn.close()
                except Exception:
                    pass
                conn = None
            time.sleep(max(0.0, a.interval - (time.time() - start)))
        json.dump({"run": a.run, "attempts": seq, "acked": acked, "errors": errors, "t0": t0}, sys.stdout)
        return
    while not stop and time.time() - t0 < a.seconds:
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
    json.dump({"run": a.run, "attempts": seq, "acked": acked, "errors": errors, "t0": t0}, sys.stdout)


if __name__ == "__main__":
    main()
