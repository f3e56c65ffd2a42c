"""A stand-in for ``vllm serve`` (FAKE: no GPU here) used to test real mode's plumbing.

Stdlib only. It answers like vLLM's OpenAI server where the proxy is tested
(/health, /metrics, /v1/completions with SSE) and reports what it was started
with (/fake/argv, /fake/knobs), so tests can check the command line, the
environment contract and the knobs file, and it records SIGTERM. A body with
``fake_hold_s`` holds the answer that long (``fake_token_delay_s`` paces a
stream) and notes a client that went away meanwhile (/fake/disconnects), as
vLLM's server notices it and aborts the request.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, b"")
        elif self.path == "/metrics":
            self._send(200, b"vllm:num_requests_running 0.0\n", "text/plain; version=0.0.4")
        elif self.path == "/fake/argv":
            env = {k: os.environ.get(k) for k in os.environ if k.startswith(("SLOSERVE_", "PROM"))}
            self._send(200, json.dumps({"argv": sys.argv[1:], "env": env}).encode())
        elif self.path == "/fake/posts":
            posts = Path(os.environ["FAKE_VLLM_MARKER"] + ".posts")
            self._send(200, str(len(posts.read_text()) if posts.exists() else 0).encode())
        elif self.path == "/fake/disconnects":
            self._send(200, json.dumps(_disconnects().count("x")).encode())
        elif self.path == "/fake/knobs":
            self._send(200, Path(os.environ["SLOSERVE_KNOBS_PATH"]).read_bytes())
        else:
            self._send(404, b'{"error": "not found"}')

    def _client_gone(self, within_s: float) -> bool:
        """Wait up to ``within_s``; True as soon as the client closed its connection."""
        deadline = time.monotonic() + within_s
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.05))
            if readable and self.connection.recv(1, socket.MSG_PEEK) == b"":
                _note_disconnect()
                return True
        return False

    def do_POST(self) -> None:
        with Path(os.environ["FAKE_VLLM_MARKER"] + ".posts").open("a") as f:
            f.write("x")  # every body that reached "vLLM" (/fake/posts)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not body.get("stream"):
            if self._client_gone(float(body.get("fake_hold_s", 0))):
                return
            self._send(200, json.dumps({"echo": body}).encode())
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(int(body["max_tokens"])):
            data = f"data: {json.dumps({'choices': [{'text': f' t{i}'}]})}\n\n".encode()
            try:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                _note_disconnect()
                return
            if self._client_gone(float(body.get("fake_token_delay_s", 0))):
                return
        done = b"data: [DONE]\n\n"
        self.wfile.write(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")


def _disconnects_file() -> Path:
    return Path(os.environ["FAKE_VLLM_MARKER"] + ".disconnects")


def _disconnects() -> str:
    path = _disconnects_file()
    return path.read_text() if path.exists() else ""


def _note_disconnect() -> None:
    with _disconnects_file().open("a") as f:
        f.write("x")


def main() -> None:
    if "FAKE_VLLM_EXIT" in os.environ:  # a vLLM that fails to start (e.g. no GPU memory)
        sys.exit(int(os.environ["FAKE_VLLM_EXIT"]))
    port = int(sys.argv[sys.argv.index("--port") + 1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)

    def on_term(signum: int, frame: FrameType | None) -> None:
        Path(os.environ["FAKE_VLLM_MARKER"]).write_text("SIGTERM")
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    server.serve_forever()


if __name__ == "__main__":
    main()
