#!/usr/bin/python3
"""A writer and a leader watch for the Patroni daemon tests, running until stdin closes.

  pg_watch.py SPEC_JSON     SPEC: {"hosts": [...], "port": N, "user": ..., "password_file": ..., "run": LABEL, "interval": 0.1}

Writer: one INSERT per interval, each on a fresh connection to whichever member accepts writes (libpq's
multi-host list with target_session_attrs=read-write, so it follows a switchover by itself); an id counts as
acknowledged only once the COMMIT returned. Watch: every member asked `pg_is_in_recovery()` in the same
round; a round where two answer "false" is two leaders. On stdin's close prints one JSON object:
{"acked": [[id, t], ...], "errors": [[id, t, msg], ...], "rounds": N, "two_leaders": [[t, [hosts]], ...]}.
The password comes from a file, never from argv.
"""
import json
import sys
import threading
import time

import psycopg2

spec = json.loads(sys.argv[1])
password = open(spec["password_file"]).read().rstrip("\n")
hosts, port, user = spec["hosts"], spec["port"], spec["user"]
interval = spec.get("interval", 0.1)
run = spec["run"]  # rows are (run, id): each watch counts from 1 in the same table
stop = threading.Event()
t0 = time.time()
out = {"acked": [], "errors": [], "rounds": 0, "two_leaders": []}


def connect(host, **kw):
    # 2 s per host: on a loaded machine (load 30 on 2 cores) a SCRAM login alone can take a second
    return psycopg2.connect(host=host, port=port, user=user, password=password, dbname="postgres", connect_timeout=2, **kw)


def writer():
    seq = 0
    while not stop.is_set():
        seq += 1
        start = time.time()
        try:
            conn = connect(",".join(hosts), target_session_attrs="read-write")
            try:
                with conn, conn.cursor() as cur:
                    cur.execute("SET LOCAL statement_timeout = 2000")
                    cur.execute("INSERT INTO watch_writes (run, id) VALUES (%s, %s)", (run, seq))
                out["acked"].append([seq, round(time.time() - t0, 3)])
            finally:
                conn.close()
        except Exception as e:  # a failed write is data: the pause
            out["errors"].append([seq, round(start - t0, 3), (str(e).strip().splitlines() or [type(e).__name__])[0][:120]])
        time.sleep(max(0.0, interval - (time.time() - start)))


def primary(host):
    try:
        conn = connect(host)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_is_in_recovery()")
                return not cur.fetchone()[0]
        finally:
            conn.close()
    except Exception:
        return False  # down or refusing: not a leader that takes writes


def watch():
    while not stop.is_set():
        at = round(time.time() - t0, 3)
        leaders = [h for h in hosts if primary(h)]
        out["rounds"] += 1
        if len(leaders) > 1:
            out["two_leaders"].append([at, leaders])
        time.sleep(0.2)


# the table exists before the first write counts (a failure here fails the test: nothing to watch)
for attempt in range(30):
    try:
        c = connect(",".join(hosts), target_session_attrs="read-write")
        with c, c.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS watch_writes (run text, id int, at timestamptz DEFAULT now(), PRIMARY KEY (run, id))")
        c.close()
        break
    except psycopg2.OperationalError:
        if attempt == 29:
            raise
        time.sleep(1)
threads = [threading.Thread(target=writer), threading.Thread(target=watch)]
for t in threads:
    t.start()
print(json.dumps({"ready": True}), flush=True)
sys.stdin.read()
stop.set()
for t in threads:
    t.join()
json.dump(out, sys.stdout)
print(flush=True)
