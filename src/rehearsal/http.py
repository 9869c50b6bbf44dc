"""A small threaded JSON-over-HTTP server on 127.0.0.1 that the protocol fronts build on (stdlib only)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class HTTPFailure(Exception):
    """An error answer: the status and the protocol's own error body."""

    def __init__(self, status: int, body: dict[str, Any]):
        super().__init__(f"{status}: {body}")
        self.status, self.body = status, body


Handler = Callable[[str, str, dict[str, Any], dict[str, str]], "dict[str, Any] | Iterable[dict[str, Any]]"]


class _Quiet(ThreadingHTTPServer):
    """A client that gave up (its request timeout) is its own business: no traceback on the console."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class JSONServer:
    """Serves `handle(method, path, body, headers)` -> a JSON object, or an iterable of objects sent as NDJSON
    (a streamed reply); HTTPFailure becomes an error status. Every request is kept in `requests` for tests."""

    def __init__(self, handle: Handler, name: str):
        self.name = name
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # the fronts' traffic is not the user's business
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    body = json.loads(raw) if raw.strip() else {}
                    if not isinstance(body, dict):
                        raise ValueError("the body is not a JSON object")
                except ValueError as exc:
                    return self._send(400, {"error": f"invalid JSON body: {exc}"})
                with outer._lock:
                    outer.requests.append({"method": method, "path": self.path, "body": body})
                try:
                    out = handle(method, self.path.split("?")[0], body, headers)
                except HTTPFailure as exc:
                    return self._send(exc.status, exc.body)
                except Exception as exc:  # noqa: BLE001 - an upstream failure is a 500 to the client, as a real server says
                    return self._send(500, {"error": f"{type(exc).__name__}: {exc}"})
                if isinstance(out, dict):
                    return self._send(200, out)
                self._stream(out)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_HEAD(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _send(self, status: int, obj: dict[str, Any]) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, chunks: Iterable[dict[str, Any]]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in chunks:
                    line = json.dumps(chunk).encode() + b"\n"
                    self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

        self._server = _Quiet(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"front-{name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> JSONServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Front:
    """What every protocol front shares: its JSONServer, `url`, the requests it received, and closing."""

    def _serve(self, handle: Handler, name: str, path: str = "") -> None:
        self._server = JSONServer(handle, name)
        self.url = self._server.url + path
        self.requests = self._server.requests

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> Front:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
