#!/usr/bin/python3
# Managed by hastack (PatroniCluster): rolling restart of PostgreSQL after a PATCH /config changed a
# setting that needs one (max_connections, ...). Run on one member by `pulumi up`; talks to every
# member's Patroni REST API. Never restarts two members at once, never promotes anything itself: the
# leader changes only through Patroni's own switchover.
#
#   pg-rolling-restart --auth CURL_CONFIG --settle-s S --wait-s W REST_URL...
#
# 1. every member's Patroni loads the new dynamic config within a loop (pending_restart appears);
# 2. replicas with pending_restart, one at a time: POST /restart {"restart_pending": true}, then wait
#    until it runs and the leader streams to it again;
# 3. the leader: a switchover to a healthy replica that already runs the new settings (Patroni restarts
#    the old leader as a replica, which reads them). A standby cluster's standby leader is restarted in
#    place (a standby cluster has no switchover, and it takes no writes). When the replicas still have
#    pending_restart after their restart, the change lowers a value the replicas must keep at least as
#    high as the leader's (Patroni starts them with pg_controldata's): the leader restarts in place
#    first, then the replicas once more;
# 4. every member is asked to compare the values it runs with the target again (POST /reload: Patroni
#    then checks pg_settings against its config and sets pending_restart on a mismatch); a member that
#    still runs another value goes through 2-3 again (at most ROUNDS in all), else the step fails and
#    says which. Why not trust the flag alone: Patroni 3.0.2 sets pending_restart=False whenever it
#    reloads its config while PostgreSQL is not "running" (postgresql/config.py reload_config, e.g. a
#    SIGHUP or a dynamic-config change landing during a restart), and a replica it started with
#    pg_controldata's higher value (effective_configuration) then runs that value with no flag.
# Prints one JSON line per action, and a summary line {"restarted": [...], "switchover": ...}.
import argparse
import json
import subprocess
import sys
import time

# rounds of 2-3: the first does the change, the next ones only what Patroni's re-check still finds
ROUNDS = 3


def log(**kv):
    print(json.dumps(kv, sort_keys=True), flush=True)


def die(msg):
    print(f"pg-rolling-restart: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


class Rest:
    def __init__(self, auth):
        self.auth = auth

    def call(self, method, url, body=None, timeout=10):
        """(HTTP status, body) of one request; unsafe methods authenticate from the root-only curl config."""
        cmd = ["curl", "-s", "--max-time", str(timeout), "-X", method, "-w", "\n%{http_code}", url]
        if method != "GET":
            cmd[1:1] = ["-K", self.auth, "-H", "Content-Type: application/json", "-d", "@-"]
        try:
            out = subprocess.run(cmd, input=(json.dumps(body) if body is not None else "").encode(),
                                 capture_output=True, timeout=timeout + 5).stdout.decode(errors="replace")
        except subprocess.TimeoutExpired:
            return 0, "timeout"
        text, _, code = out.rpartition("\n")
        return int(code or 0), text

    def get(self, url):
        code, text = self.call("GET", url, timeout=5)
        if code != 200 and not text.startswith("{"):
            return None
        try:
            return json.loads(text)
        except ValueError:
            return None


def until(what, wait_s, probe, step=0.5):
    end = time.time() + wait_s
    while True:
        v = probe()
        if v:
            return v
        if time.time() > end:
            die(f"timed out after {wait_s}s waiting for {what}")
        time.sleep(step)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--auth", required=True, help="curl config with the REST API credentials (curl -K)")
    ap.add_argument("--settle-s", type=float, required=True, help="how long members may take to load a PATCHed config")
    ap.add_argument("--wait-s", type=float, default=300, help="limit for each restart and for the switchover")
    ap.add_argument("urls", nargs="+")
    a = ap.parse_args()
    rest = Rest(a.auth)

    def status(url):
        """This member's own view (/patroni): live, unlike the member keys in etcd."""
        return rest.get(f"{url}/patroni")

    def everyone():
        return {u: status(u) for u in a.urls}

    def leader_of(st):
        return [u for u, s in st.items() if s and s.get("role") in ("master", "primary", "standby_leader") and s.get("state") == "running"]

    def pending(st):
        return [u for u, s in st.items() if s and s.get("pending_restart")]

    cluster = None
    for u in a.urls:
        cluster = rest.get(f"{u}/cluster")
        if cluster:
            break
    if not cluster:
        die("no member's REST API answers /cluster")
    by_url = {}
    for m in cluster.get("members", []):
        api = m.get("api_url", "")
        by_url[api.rsplit("/", 1)[0]] = m.get("name")
    name = lambda u: by_url.get(u, u)  # noqa: E731

    cfg = rest.get(f"{a.urls[0]}/config") or {}
    if cfg.get("pause"):
        die("Patroni is paused (maintenance mode): no restart while it is; resume it (patronictl resume) and deploy again")

    # 1. members reload the PATCHed config at their next HA loop; stop waiting as soon as all show it
    t0 = time.time()
    while True:
        st = everyone()
        if len(pending(st)) == len(a.urls) or time.time() - t0 > a.settle_s:
            break
        time.sleep(0.5)
    down = [name(u) for u, s in st.items() if not s or s.get("state") != "running"]
    if down:
        die(f"members not running: {', '.join(down)}; a rolling restart needs every member up (nothing was restarted)")
    # nothing pending: nothing to do, whoever leads (with a scale-in the leader may be a member on its way
    # out, not among the urls: it hands over by a switchover when its own delete runs, after this step)
    if not pending(st):
        log(action="none", reason="no member has pending_restart")
        log(restarted=[], switchover=None)
        return
    leaders = leader_of(st)
    if len(leaders) != 1:
        die(f"expected one running leader among the members, found {[name(u) for u in leaders]} (nothing was restarted;"
            " if the leader is a member this deploy removes, deploy the removal first, then the setting)")
    leader = leaders[0]
    standby_cluster = st[leader].get("role") == "standby_leader"

    restarted = []
    switchover = None

    def streaming_from(lead_url, url):
        """The leader's WAL senders include this member, streaming."""
        s = status(lead_url) or {}
        return any(r.get("application_name") == name(url) and r.get("state") == "streaming" for r in s.get("replication", []))

    def restart(url, why):
        before = (status(url) or {}).get("postmaster_start_time")
        t = time.time()
        code, text = rest.call("POST", f"{url}/restart", {"restart_pending": True}, timeout=int(a.wait_s))
        # 503 "restart conditions are not satisfied": its pending flag cleared meanwhile (nothing to do)
        if code == 503 and "conditions are not satisfied" in text:
            log(action="restart-skipped", member=name(url), reason=text.strip())
            return
        if code != 200:
            die(f"POST {url}/restart answered {code}: {text.strip()}")
        until(f"{name(url)} to run again after its restart", a.wait_s,
              lambda: (lambda s: s and s.get("state") == "running" and s.get("postmaster_start_time") != before)(status(url)))
        restarted.append(name(url))
        log(action="restarted", member=name(url), why=why, seconds=round(time.time() - t, 1))

    def restart_replicas(lead_url, why):
        for u in a.urls:
            s = status(u)
            if u == lead_url or not (s and s.get("pending_restart")):
                continue
            restart(u, why)
            # the replica is back only once it streams from the leader again (a standby leader's replicas too)
            until(f"{name(u)} to stream from {name(lead_url)} again", a.wait_s, lambda: streaming_from(lead_url, u))

    def one_round(leader):
        """Steps 2-3 for the members flagged now; returns the switchover made, if any."""
        # 2. replicas first, one at a time
        restart_replicas(leader, "replica")
        # 3. the leader
        st = everyone()
        if not (st[leader] and st[leader].get("pending_restart")):
            return None
        replicas_pending = [u for u in pending(st) if u != leader]
        if standby_cluster or replicas_pending:
            # standby cluster (no switchover there, no writes to pause), or a lowered value the replicas
            # cannot take before the leader has it: restart the leader in place, then the replicas again
            restart(leader, "standby leader, in place" if standby_cluster else "leader in place: replicas keep its higher value until it restarts")
            until(f"{name(leader)} to lead again", a.wait_s, lambda: leader in leader_of(everyone()))
            # a replica takes the lower value only once it has replayed the leader's parameter-change record
            # (written at its start; it updates the replica's pg_controldata): restarted before that, it stays
            # pending (seen on a real cluster)
            lsn = int(((status(leader) or {}).get("xlog") or {}).get("location") or 0)
            for u in a.urls:
                if u != leader:
                    until(f"{name(u)} to replay up to {lsn}", a.wait_s,
                          lambda: int((((status(u) or {}).get("xlog") or {}).get("replayed_location")) or 0) >= lsn)
            restart_replicas(leader, "replica, after the leader")
            return None
        candidates = [u for u, s in st.items() if u != leader and s and s.get("state") == "running"
                      and not s.get("pending_restart") and not (s.get("tags") or {}).get("nofailover")
                      and streaming_from(leader, u)]
        # synchronous mode: Patroni switches over only to the synchronous standby
        sync = [u for u in candidates if st[u].get("sync_standby")]
        candidates = sync or candidates
        if not candidates:
            die(f"no healthy replica to switch over to; {name(leader)} keeps pending_restart (restart it with POST /restart when a pause is acceptable)")
        # the replica with the most WAL replayed: the shortest catch-up before promotion
        cand = max(candidates, key=lambda u: int((st[u].get("xlog") or {}).get("replayed_location") or 0))
        t = time.time()
        code, text = rest.call("POST", f"{leader}/switchover", {"leader": name(leader), "candidate": name(cand)}, timeout=int(a.wait_s))
        # 503 "status unknown": Patroni stopped polling (loop_wait + 2 s) before it saw the result; the wait below decides
        if code != 200 and not (code == 503 and "unknown" in text.lower()):
            die(f"switchover {name(leader)} → {name(cand)} refused ({code}): {text.strip()}")
        until(f"{name(cand)} to lead", a.wait_s, lambda: cand in leader_of(everyone()))
        until(f"{name(leader)} to stream from {name(cand)}", a.wait_s,
              lambda: (lambda s: s and s.get("state") == "running" and s.get("role") == "replica")(status(leader)) and streaming_from(cand, leader))
        done = {"from": name(leader), "to": name(cand), "seconds": round(time.time() - t, 1)}
        log(action="switchover", **done)
        # the old leader restarted as a replica with the new settings; restart it only if it did not
        restart_replicas(cand, "old leader")
        return done

    def recheck():
        """4. Every member compares what it runs with the target again (POST /reload, once nothing restarts):
        Patroni's pending_restart alone can be False on a member that runs another value (see the header)."""
        for u in a.urls:
            code, text = rest.call("POST", f"{u}/reload", {})
            if code not in (200, 202):
                die(f"POST {u}/reload answered {code}: {text.strip()}")
        # the reload runs at the member's next HA loop, then waits 1 s and reads pg_settings
        t0 = time.time()
        while True:
            st = everyone()
            if len(pending(st)) == len(a.urls) or time.time() - t0 > a.settle_s:
                return st
            time.sleep(0.5)

    for rnd in range(1, ROUNDS + 1):
        made = one_round(leader)
        switchover = switchover or made
        st = recheck()
        left = pending(st)
        if not left:
            break
        leaders = leader_of(st)
        if len(leaders) != 1:
            die(f"expected one running leader after round {rnd}, found {[name(u) for u in leaders]}")
        leader = leaders[0]
        log(action="recheck", round=rnd, pending=[name(u) for u in left],
            reason="Patroni compared the running values with the target again: these members still run other values")
    else:
        hint = (" A lowered value on a standby site takes effect once the leading site's leader runs with it: deploy that site first."
                if standby_cluster else "")
        die(f"still pending_restart after {ROUNDS} rounds of the rolling restart: {', '.join(name(u) for u in left)}.{hint}")
    log(restarted=restarted, switchover=switchover)


if __name__ == "__main__":
    main()
