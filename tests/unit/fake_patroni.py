#!/usr/bin/env python3
"""A fake Patroni cluster for tests of pg-rolling-restart: one REST API per member on 127.0.0.1, sharing one
state. It models what the script relies on: /patroni (role, state, pending_restart, postmaster_start_time,
the leader's WAL senders), /cluster, /config (pause), an authenticated POST /restart {"restart_pending"}
and POST /switchover, and PostgreSQL's rule that a replica runs with at least its leader's max_connections
(Patroni starts it with pg_controldata's value and keeps pending_restart). pending_restart is a flag, as
in Patroni: set when a member loads the target or restarts below it, re-evaluated by POST /reload; the
scenario's "flag_lost_on_restart" names members whose flag a restart clears although they still run
another value (Patroni 3.0.2 clears it when it reloads its config while PostgreSQL is starting).
GET /_state answers every member's name, role and running value, for the test's assertions.

  fake_patroni.py SCENARIO_JSON   prints the member ports as one JSON line, then serves until stdin closes;
                                  every unsafe request is appended to the file named by the scenario's "log"
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sc = json.loads(sys.argv[1])
lock = threading.Lock()
members = sc["members"]  # [{name, role: master|replica|standby_leader, running, state?}]
target = sc["target"]
for m in members:
    m.setdefault("state", "running")
    m["started"] = 1
    m["flag"] = m["running"] != target
lose_flag = set(sc.get("flag_lost_on_restart", []))
LOG = sc["log"]


def leader():
    return next(m for m in members if m["role"] in ("master", "standby_leader"))


def pending(m):
    return m["flag"]


def record(**kv):
    with open(LOG, "a") as f:
        f.write(json.dumps(kv) + "\n")


def status(m):
    s = {"state": m["state"], "role": m["role"], "postmaster_start_time": f"t{m['started']}", "tags": {}}
    if m["state"] != "running":
        return s
    if pending(m):
        s["pending_restart"] = True
    if m["role"] == "replica":
        s["xlog"] = {"replayed_location": 100, "received_location": 100}
    else:
        s["xlog"] = {"location": 100}
    if m["role"] in ("master", "standby_leader"):
        s["replication"] = [{"application_name": r["name"], "state": "streaming"} for r in members
                            if r is not m and r["state"] == "running"]
    return s


def restart(m):
    m["started"] += 1
    # a replica never runs below its leader's value (pg_controldata); a leader takes the target
    m["running"] = target if m is leader() else max(target, leader()["running"])
    m["flag"] = m["running"] != target and m["name"] not in lose_flag
    lose_flag.discard(m["name"])  # once: the race of one restart

class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, body):
        data = (json.dumps(body) if not isinstance(body, str) else body).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def me(self):
        return members[self.server.index]

    def do_GET(self):
        with lock:
            if self.path == "/patroni":
                return self.reply(200, status(self.me()))
            if self.path == "/cluster":
                return self.reply(200, {"members": [{"name": m["name"], "role": "leader" if m["role"] == "master" else m["role"],
                                                     "state": m["state"], "host": "127.0.0.1",
                                                     "api_url": f"http://127.0.0.1:{m['port']}/patroni"} for m in members]})
            if self.path == "/_state":
                return self.reply(200, [{"name": m["name"], "role": m["role"], "running": m["running"]} for m in members])
            if self.path == "/config":
                return self.reply(200, {"pause": sc.get("paused", False), "postgresql": {"parameters": {"max_connections": target}}})
        self.reply(404, "")

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if not (self.headers.get("Authorization") or "").startswith("Basic "):
            record(path=self.path, member=self.me()["name"], refused="no auth")
            return self.reply(401, "no auth")
        with lock:
            me = self.me()
            if self.path == "/restart":
                if body.get("restart_pending") and not pending(me):
                    record(path="/restart", member=me["name"], skipped=True)
                    return self.reply(503, "restart conditions are not satisfied")
                record(path="/restart", member=me["name"], role=me["role"], leaderRunning=leader()["running"])
                restart(me)
                return self.reply(200, "restarted successfully")
            if self.path == "/reload":
                # Patroni compares pg_settings with its config: the flag says again whether it runs the target
                record(path="/reload", member=me["name"])
                me["flag"] = me["running"] != target
                return self.reply(202, "reload scheduled")
            if self.path == "/switchover":
                old, new = leader(), next(m for m in members if m["name"] == body["candidate"])
                if body.get("leader") != old["name"] or old["role"] != "master":
                    return self.reply(412, "leader name does not match")
                record(path="/switchover", member=me["name"], leader=old["name"], candidate=new["name"])
                old["role"], new["role"] = "replica", "master"
                # Patroni stops the old leader and starts it as a replica: it reads the new settings then
                restart(old)
                return self.reply(200, f"Successfully switched over to \"{new['name']}\"")
        self.reply(404, "")


servers = []
for i, m in enumerate(members):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.index = i
    m["port"] = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    servers.append(srv)
print(json.dumps([m["port"] for m in members]), flush=True)
sys.stdin.read()
