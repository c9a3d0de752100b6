"""An HTTP authentication and ACL service for the [auth.http] end-to-end tests
(nanomq-bin/tests/e2e_auth_http.rs). Standard library only: runs on any python3.

Usage: auth_http_server.py [--slow SECONDS] [--tls CERT KEY]. Binds 127.0.0.1 on a free
port and prints `listening PORT CONTROL`; with --tls it speaks https with that certificate,
and CONTROL is a second, plain-HTTP port for `GET /requests` (without, CONTROL is PORT). Every request is recorded; `GET /requests` returns them as JSON (method,
path, content type, the parameters as decoded from the query, a form or a JSON body).

/auth decides by user name:
  alice:secret          204 (the status decides)
  admin:root            200 {"result": "allow", "is_superuser": true}
  special:<SPECIAL>     200 {"result": "allow"} (a password full of characters to encode)
  jsondeny              200 {"result": "deny"}
  ignored               200 {"result": "ignore"}
  broken                500
  slow                  waits --slow seconds, then as alice
  anything else         401
/acl decides by topic: denied/... 403; jsondeny/... 200 {"result": "deny"}; slow/... waits
--slow seconds then 204; anything else 204.
"""

import argparse
import json
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SPECIAL = "p&w=1+%2F \"q\" \\ é/?#;"

USERS = {"alice": "secret", "admin": "root", "special": SPECIAL, "slow": "secret"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    slow = 0.0
    recorded = []
    lock = threading.Lock()

    def log_message(self, *_args):
        pass

    def params(self, body):
        url = urllib.parse.urlsplit(self.path)
        params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        kind = (self.headers.get("content-type") or "").split(";")[0].strip().lower()
        if body:
            if kind == "application/json":
                params.update(json.loads(body.decode("utf-8")))
            elif kind == "application/x-www-form-urlencoded":
                params.update(
                    urllib.parse.parse_qsl(body.decode("ascii"), keep_blank_values=True)
                )
        return url.path, kind, params

    def answer(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        path, kind, params = self.params(body)
        if path == "/requests":
            with self.lock:
                self.answer(200, list(self.recorded))
            return
        with self.lock:
            self.recorded.append(
                {
                    "method": self.command,
                    "path": path,
                    "content_type": kind,
                    "params": params,
                    "at": time.monotonic(),
                }
            )
        if path.startswith("/auth"):
            self.authenticate(params)
        elif path.startswith("/acl"):
            self.authorize(params)
        else:
            self.answer(404)

    def authenticate(self, params):
        user = params.get("username", "")
        password = params.get("password", "")
        if user == "slow":
            time.sleep(self.slow)
        if user == "broken":
            self.answer(500)
        elif user == "jsondeny":
            self.answer(200, {"result": "deny"})
        elif user == "ignored":
            self.answer(200, {"result": "ignore"})
        elif USERS.get(user) != password:
            self.answer(401)
        elif user == "admin":
            self.answer(200, {"result": "allow", "is_superuser": True})
        elif user == "special":
            self.answer(200, {"result": "allow"})
        else:
            self.answer(204)

    def authorize(self, params):
        topic = params.get("topic", "")
        if topic.startswith("slow/"):
            time.sleep(self.slow)
        if topic.startswith("denied/"):
            self.answer(403)
        elif topic.startswith("jsondeny/"):
            self.answer(200, {"result": "deny"})
        else:
            self.answer(204)

    do_GET = handle_any
    do_POST = handle_any


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow", type=float, default=3.0)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()
    Handler.slow = args.slow
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls[0], args.tls[1])
        server.socket = context.wrap_socket(server.socket, server_side=True)
        control = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        control.daemon_threads = True
        threading.Thread(target=control.serve_forever, daemon=True).start()
        control_port = control.server_address[1]
    else:
        control_port = server.server_address[1]
    print(f"listening {server.server_address[1]} {control_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
