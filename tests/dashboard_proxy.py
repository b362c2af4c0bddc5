"""A loopback proxy in front of a token-protected Ray dashboard, for headless chromium: it adds
the token to every request (``Authorization: Bearer``) and as the dashboard's session cookie, so
the browser needs no login step."""

from __future__ import annotations

import http.server
import threading
import urllib.error
import urllib.request

COOKIE = "ray-authentication-token"


def start(target: str, token: str) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``target`` (``http://127.0.0.1:8265``) on a free loopback port; (server, its URL)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            req = urllib.request.Request(target.rstrip("/") + self.path,
                                         headers={"Authorization": f"Bearer {token}", "Cookie": f"{COOKIE}={token}",
                                                  "Accept": self.headers.get("Accept", "*/*")})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    body, code, headers = r.read(), r.status, r.headers
            except urllib.error.HTTPError as e:
                body, code, headers = e.read(), e.code, e.headers
            self.send_response(code)
            for k in ("Content-Type", "Cache-Control"):
                if headers.get(k):
                    self.send_header(k, headers[k])
            self.send_header("Set-Cookie", f"{COOKIE}={token}; Path=/")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
