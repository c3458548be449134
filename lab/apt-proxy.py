#!/usr/bin/env python3
"""The lab's way to Debian's mirror: a forward HTTP proxy for apt on a lab VM.

Lab VMs reach only their bridge; a test that removes a package on a VM (drift: "a managed package
removed") needs the program's `apt-get update && apt-get install` to reach the mirror again. This
proxy listens on the host's bridge address and forwards GET/HEAD requests for the Debian mirror
hosts only (anything else: 403). A VM uses it through `Acquire::http::Proxy` while the test runs.

    python3 lab/apt-proxy.py ADDRESS PORT      (prints "ready" once listening; stops on SIGTERM)
"""
import http.server
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request

ALLOWED = {"deb.debian.org", "security.debian.org"}
KEEP = ("Content-Type", "Content-Length", "Last-Modified", "ETag", "Date")


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def forward(self, body: bool) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.scheme != "http" or url.hostname not in ALLOWED:
            self.send_error(403, "only the Debian mirror")
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("if-modified-since", "range", "if-range")}
        req = urllib.request.Request(self.path, headers=headers, method="GET" if body else "HEAD")
        try:
            resp = urllib.request.urlopen(req, timeout=60)
        except urllib.error.HTTPError as e:  # 304, 404 and the like reach apt as they are
            resp = e
        except OSError as e:
            self.send_error(502, f"mirror unreachable: {e}")
            return
        with resp:
            self.send_response(resp.status if hasattr(resp, "status") else resp.code)
            for k in KEEP:
                if resp.headers.get(k) is not None:
                    self.send_header(k, resp.headers[k])
            if resp.headers.get("Content-Length") is None:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if body:
                shutil.copyfileobj(resp, self.wfile)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.forward(True)

    def do_HEAD(self) -> None:  # noqa: N802
        self.forward(False)

    def log_message(self, fmt: str, *args) -> None:
        sys.stderr.write("apt-proxy: " + (fmt % args) + "\n")


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: apt-proxy.py ADDRESS PORT")
    server = http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Proxy)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
