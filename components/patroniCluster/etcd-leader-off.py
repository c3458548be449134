#!/usr/bin/python3
# Managed by hastack (PatroniCluster): keeps etcd's raft leader off the Patroni leader's host.
# Why: when the host that leads both crashes, the new etcd leader renews every lease to its full ttl
# (etcd 3.4 keeps no remaining time across a leader change), the Patroni leader key's lease too, so
# the failover waits an etcd election plus a whole ttl instead of what was left of it: ~3 s more with
# the aggressive profile (issue 12, bench/results-leader-crash.md). A raft leadership transfer is
# graceful: etcd keeps serving, Patroni's next write waits for it at most an election timeout.
# Usage: etcd-leader-off.py PATRONI_PRIMARY_URL ETCD_CLIENT_URL CREDENTIALS_FILE (run by a systemd timer).
import json
import os
import shlex
import subprocess
import sys
import urllib.error
import urllib.request


def patroni_leads(url):
    """Patroni's /primary answers 200 only on the member holding the leader key."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="OPTIONS"), timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def credentials(path):
    """ETCDCTL_* variables of the root login file (`export K=V` lines, shell-quoted); none if unreadable."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                for word in shlex.split(line, comments=True):
                    if "=" in word and word != "export":
                        k, v = word.split("=", 1)
                        out[k] = v
    except OSError:
        pass
    return out


def run(endpoint, creds, *args):
    """etcdctl (its password in the environment, never argv): (exit code, stdout, stderr)."""
    env = {**os.environ, "ETCDCTL_API": "3", **creds}
    try:
        p = subprocess.run(["etcdctl", "--endpoints=" + endpoint, "--command-timeout=3s", *args],
                           env=env, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return 124, "", "timed out"
    return p.returncode, p.stdout, p.stderr


def ctl(endpoint, creds, *args):
    """etcdctl's JSON answer; None when it fails."""
    code, out, _ = run(endpoint, creds, "-w", "json", *args)
    try:
        return json.loads(out) if code == 0 else None
    except ValueError:
        return None


def main():
    primary_url, self_url, cred_file = sys.argv[1:4]
    if not patroni_leads(primary_url):
        return
    creds = credentials(cred_file)
    # before etcd authentication is on (a first deploy) a login is refused: ask without one
    auths = [creds, {}] if creds else [{}]
    for auth in auths:
        status = ctl(self_url, auth, "endpoint", "status")
        if status:
            break
    else:
        return
    st = status[0]["Status"]
    me = st["header"]["member_id"]
    if st["leader"] != me:
        return
    members = (ctl(self_url, auth, "member", "list") or {}).get("members", [])
    # the transferee must be a started member that answers and has applied what the leader committed
    for m in members:
        if m["ID"] == me or not m.get("clientURLs"):
            continue
        other = ctl(m["clientURLs"][0], auth, "endpoint", "status")
        if not other or other[0]["Status"]["raftIndex"] + 100 < st["raftIndex"]:
            continue
        code, out, err = run(self_url, auth, "move-leader", format(m["ID"], "x"))
        print((out or err).strip() + " (this host leads Patroni)")
        sys.exit(0 if code == 0 else 1)


if __name__ == "__main__":
    main()
