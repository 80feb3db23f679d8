"""A tiny logging HTTP proxy for diagnosing what a real XMLA client and datakube say.

ADOMD.NET on Mono reports almost every failure as `DllNotFoundException: ole32.dll`, so the only
way to see what went wrong is to look at the bytes. This proxy sits between client and server,
forwards every request unchanged (chunked request bodies are de-chunked and sent with a
Content-Length), and appends each exchange to a log file.

Started by conftest.py as a separate process when XMLA_TRACE=1 (not as a thread of the test
process: pythonnet holds the GIL during blocking ADOMD.NET calls), and runnable by hand:

    python tests/clients/xmla_proxy.py --upstream https://127.0.0.1:8443 --listen 18080 --log /tmp/xmla.log

The proxy listens on plain HTTP (point the client at http://127.0.0.1:18080/xmla) and talks
HTTPS to the server without checking its certificate (it is our own test server). ADOMD.NET
on Mono stalled behind a TLS-terminating Python proxy, so there is none.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import http.server
import ssl
import threading
import urllib.parse
import zlib

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "host",
}


def _decode(body: bytes, encoding: str | None) -> str:
    try:
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
    except Exception:  # noqa: BLE001 - logging must never break forwarding
        pass
    return body.decode("utf-8", errors="replace")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LoggingProxy

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until the empty line
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self) -> None:
        body = self._read_body()
        up = self.server.upstream
        if up.scheme == "https":
            conn = http.client.HTTPSConnection(up.hostname, up.port, context=self.server.client_ctx, timeout=300)
        else:
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=300)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Host"] = up.netloc
        if self.command not in ("GET", "HEAD") or body:
            headers["Content-Length"] = str(len(body))
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status, reason, resp_headers = resp.status, resp.reason, resp.getheaders()
        except Exception as e:  # noqa: BLE001
            data = f"proxy: upstream failed: {e!r}".encode()
            status, reason, resp_headers = 502, "Bad Gateway", [("Content-Type", "text/plain")]
        finally:
            conn.close()
        self.server.record(self, body, status, reason, resp_headers, data)
        self.send_response(status, reason)
        for k, v in resp_headers:
            if k.lower() not in HOP_BY_HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_POST = do_GET = do_HEAD = do_PUT = _forward


class LoggingProxy(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, log_path: str, listen: tuple[str, int] = ("127.0.0.1", 0)):
        super().__init__(listen, _Handler)
        self.upstream = urllib.parse.urlsplit(upstream)
        self.client_ctx = ssl._create_unverified_context()  # upstream is our own test server
        self.log_path = log_path
        self._lock = threading.Lock()
        self._seq = 0

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def record(self, h: _Handler, req_body: bytes, status: int, reason: str, resp_headers, resp_body: bytes):
        with self._lock:
            self._seq += 1
            req_h = "".join(f"{k}: {v}\n" for k, v in h.headers.items())
            resp_h = "".join(f"{k}: {v}\n" for k, v in resp_headers)
            enc = {k.lower(): v for k, v in resp_headers}.get("content-encoding")
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(f"===== #{self._seq} >>> {h.command} {h.path}\n{req_h}\n")
                f.write(_decode(req_body, None) + "\n")
                f.write(f"----- #{self._seq} <<< {status} {reason}\n{resp_h}\n")
                f.write(_decode(resp_body, enc) + "\n\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", required=True, help="e.g. https://127.0.0.1:8443")
    ap.add_argument("--listen", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    ap.add_argument("--log", required=True)
    a = ap.parse_args()
    p = LoggingProxy(a.upstream, a.log, ("127.0.0.1", a.listen))
    print(f"proxy listening on {p.url}, forwarding to {a.upstream}, logging to {a.log}", flush=True)
    p.serve_forever()


if __name__ == "__main__":
    main()
