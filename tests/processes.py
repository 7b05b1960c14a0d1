"""Running our processes from tests: free ports, the resolver as a subprocess, probes and DNS questions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

ROOT = Path(__file__).resolve().parents[1]


def http_status(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_until(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


class Process:
    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._stderr = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "resolver", *args], stderr=self._stderr,
                                     stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                                     cwd=ROOT)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self._stderr.close()


def ask(port: int, name: str, rtype: str) -> tuple[str, set[tuple[str, str, str]]]:
    response = dns.query.udp(dns.message.make_query(name, rtype), "127.0.0.1", port=port, timeout=2)
    return dns.rcode.to_text(response.rcode()), {
        (rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), rr.to_text())
        for rrset in response.answer for rr in rrset}
