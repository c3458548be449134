#!/usr/bin/python3
"""HTTPS prober for drills: starts one GET every --interval seconds, each on a new connection and in its
own thread (a slow answer never delays the next request), each with --timeout seconds for the whole
request. Runs until its stdin closes, waits for the requests still open, then exits. One JSON line per
request on stdout:
  {"start": epoch s, "seconds": duration, "status": HTTP status or null, "node": the answering WorksPad
   node (wpnode cookie) or null, "error": text or null, "phase": where it ended or failed
   ("tcp", "tls", "response", "done"), "tcp": s to connected, "tls": s to handshake done, "port": local port}
The phases tell a lost SYN (a VIP or ARP problem) from a balancer that accepted but did not answer.

--cafile: verify the balancer's chain with these CA certificates (one PEM file, several allowed: a client
across a CA rotation trusts old and new). The name is not checked: the prober asks for the VIP's address,
which the balancers' certificates do not carry. Without --cafile nothing is verified.

A process of its own, not the test's event loop: there, the in-process Pulumi program (an inline
program of the Automation API) competes with the prober's timers, so a late callback would look like a
slow server.
"""
import argparse
import http.client
import json
import socket
import ssl
import sys
import threading
import time
from urllib.parse import urlsplit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--cafile")
    a = ap.parse_args()
    u = urlsplit(a.url)
    host, port = u.hostname, u.port or 443
    ctx = ssl.create_default_context(cafile=a.cafile) if a.cafile else ssl.create_default_context()
    ctx.check_hostname = False
    if not a.cafile:
        ctx.verify_mode = ssl.CERT_NONE
    request = ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nUser-Agent: hastack-prober\r\n\r\n"
               % (u.path or "/", host)).encode()
    out = threading.Lock()
    stop = threading.Event()

    def emit(rec):
        with out:
            sys.stdout.write(json.dumps(rec) + "\n")
            sys.stdout.flush()

    def one():
        t0 = time.time()
        rec = {"start": round(t0, 3), "seconds": None, "status": None, "node": None, "error": None,
               "phase": "tcp", "tcp": None, "tls": None, "port": None}
        deadline = t0 + a.timeout
        left = lambda: max(0.001, deadline - time.time())  # noqa: E731 - the whole request shares one budget
        sock = None
        try:
            sock = socket.create_connection((host, port), timeout=left())
            rec["port"] = sock.getsockname()[1]
            rec["tcp"] = round(time.time() - t0, 3)
            rec["phase"] = "tls"
            sock.settimeout(left())
            sock = ctx.wrap_socket(sock, server_hostname=None)
            rec["tls"] = round(time.time() - t0, 3)
            rec["phase"] = "response"
            sock.settimeout(left())
            sock.sendall(request)
            r = http.client.HTTPResponse(sock)
            r.begin()
            sock.settimeout(left())
            r.read()
            rec["status"] = r.status
            for c in r.headers.get_all("Set-Cookie") or []:
                if c.startswith("wpnode="):
                    rec["node"] = c.split(";")[0][len("wpnode="):]
            rec["phase"] = "done"
            if time.time() > deadline:
                rec["error"] = "answered after the timeout"
        except Exception as e:  # noqa: BLE001 - every failure is a failed request for the client
            rec["error"] = "%s: %s" % (type(e).__name__, e)
        finally:
            if sock is not None:
                sock.close()
        rec["seconds"] = round(time.time() - t0, 3)
        emit(rec)

    def reader():
        sys.stdin.read()
        stop.set()

    threading.Thread(target=reader, daemon=True).start()
    threads = []
    nxt = time.time()
    while not stop.is_set():
        t = threading.Thread(target=one)
        t.start()
        threads.append(t)
        threads = [t for t in threads if t.is_alive()]
        nxt += a.interval
        stop.wait(max(0.0, nxt - time.time()))
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
