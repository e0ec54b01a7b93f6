"""A local HTTP server on 127.0.0.1 serving a folder with range requests, and hostile variants.

``serve(folder, mode)`` is a context manager yielding the base URL. Modes: ``ok`` (HEAD,
200 and 206 answers as a CDN gives them), ``ignore-range`` (answers 200 with the whole body),
``short`` (declares the range's length, sends half and closes), ``long`` (answers a range with more
bytes than it asked for), ``stall`` (answers the headers, then sends nothing until the server stops: the
client's timeout must end the read), ``bigger`` (HEAD declares more bytes than the file has) and
``drift`` (range answers carry another ETag than HEAD: the file changed during the run).
Every request is logged (``server.log``) with the body bytes sent (a HEAD: 0), for the bytes-fetched figures.
Files carry an ETag and a Last-Modified date from their modification time and size, as static
file servers give them (``serve(..., validators=False)``: neither, so nothing may be cached).
"""
from __future__ import annotations

import contextlib
import email.utils
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

MODES = ("ok", "ignore-range", "short", "long", "stall", "bigger", "drift")


MAX_WHOLE = 64 << 20  # a 200 answer sends at most this much (the client must refuse it anyway)


def _read(path: Path, start: int, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(n)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _file(self) -> Path | None:
        try:
            path = (self.server.root / unquote(self.path.lstrip("/"))).resolve()
            return path if path.is_relative_to(self.server.root) and path.is_file() else None
        except (OSError, RuntimeError, ValueError):  # symlink loops, odd names: not found
            return None

    def _validators(self, path: Path) -> dict:
        if not self.server.validators:
            return {}
        st = path.stat()
        drift = "-new" if self.server.mode == "drift" and self.command == "GET" else ""
        return {"ETag": f'"{st.st_mtime_ns:x}-{st.st_size:x}{drift}"',
                "Last-Modified": email.utils.formatdate(st.st_mtime, usegmt=True)}

    def _head(self, code: int, length: int, extra: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def do_HEAD(self):  # noqa: N802 - http.server's naming
        path = self._file()
        if path is None:
            return self._head(404, 0)
        size = path.stat().st_size
        self._head(200, size + (1000 if self.server.mode == "bigger" else 0), self._validators(path))
        self.server.log.append(("HEAD", self.path, 0))

    def do_GET(self):  # noqa: N802
        path = self._file()
        if path is None:
            return self._head(404, 0)
        size, mode = path.stat().st_size, self.server.mode
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        if not match or mode == "ignore-range":
            return self._send(200, _read(path, 0, min(size, MAX_WHOLE)), self._validators(path))
        a, b = int(match[1]), int(match[2])
        if a >= size:
            return self._head(416, 0, {"Content-Range": f"bytes */{size}"})
        body = _read(path, a, min(b + 1, size) - a)
        self._send(206, body, {"Content-Range": f"bytes {a}-{a + len(body) - 1}/{size}", **self._validators(path)})

    def _send(self, code: int, body: bytes, extra: dict) -> None:
        mode, hostile = self.server.mode, code == 206 and len(body) > 8
        if mode == "long" and hostile:
            body += b"\0" * 64  # more than the range asked for, declared as such
        self._head(code, len(body), extra)
        if mode == "stall" and hostile:
            self.server.stopping.wait()
            return
        out = body[: len(body) // 2] if mode == "short" and hostile else body
        with contextlib.suppress(OSError):
            self.wfile.write(out)
        self.server.log.append((self.command, self.path, len(out)))
        if out is not body:
            self.close_connection = True


@contextlib.contextmanager
def serve(folder: Path, mode: str = "ok", validators: bool = True):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.root, server.mode, server.log = Path(folder).resolve(), mode, []
    server.validators = validators
    server.stopping = threading.Event()
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
