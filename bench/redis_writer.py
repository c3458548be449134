#!/usr/bin/env python3
"""Write keys continuously through a Redis endpoint (raw RESP, one connection per write) and
record which writes were acknowledged. Bounded by --seconds; talks only to the --host given."""
import argparse, json, signal, socket, sys, time


def resp(*parts: bytes) -> bytes:
    out = b"*%d\r\n" % len(parts)
    for p in parts:
        out += b"$%d\r\n%s\r\n" % (len(p), p)
    return out


USER = [b"app"]


def call(host: str, port: int, password: bytes, *cmd: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=1) as s:
        s.settimeout(1)
        # the application's own ACL user (hastack:redis.appUser), never Redis' default user
        s.sendall(resp(b"AUTH", USER[0], password) + resp(*cmd))
        buf = b""
        while buf.count(b"\r\n") < 2:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        auth, reply = buf.split(b"\r\n")[:2]
        if not auth.startswith(b"+OK"):
            raise RuntimeError(auth.decode(errors="replace"))
        return reply


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--user", default="app", help="the application's Redis ACL user (hastack:redis.appUser)")
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--run", required=True)
    ap.add_argument("--verify", action="store_true", help="read acked seqs as JSON on stdin; print the missing ones")
    a = ap.parse_args()
    pw = open(a.password_file, "rb").read().rstrip(b"\n")
    USER[0] = a.user.encode()
    if a.verify:
        missing = [n for n in json.load(sys.stdin) if call(a.host, a.port, pw, b"EXISTS", b"drill:%s:%d" % (a.run.encode(), n)) != b":1"]
        json.dump(missing, sys.stdout)
        return
    acked, errors, seq, t0 = [], [], 0, time.time()
    # SIGTERM ends the run early (a test stops it when its change is done) and still prints the results
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while time.time() - t0 < a.seconds and not stop:
        seq += 1
        start = time.time()
        try:
            r = call(a.host, a.port, pw, b"SET", b"drill:%s:%d" % (a.run.encode(), seq), b"1")
            if r != b"+OK":
                raise RuntimeError(r.decode(errors="replace"))
            acked.append([seq, round(time.time() - t0, 3)])
        except Exception as e:
            errors.append([seq, round(start - t0, 3), (str(e) or type(e).__name__)[:120]])
        time.sleep(max(0.0, a.interval - (time.time() - start)))
    json.dump({"run": a.run, "attempts": seq, "acked": acked, "errors": errors}, sys.stdout)


if __name__ == "__main__":
    main()
