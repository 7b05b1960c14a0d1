"""Real secondaries for the transfer tests: Knot DNS (``knotd``) and BIND (``named``) on loopback, each with a
generated configuration in a temporary directory, following our resolver as their primary (with TSIG), and
accepting its NOTIFYs. Each logs to a file the tests read (which transfers it made: IXFR or AXFR).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype

from resolver.server import free_dns_port

KNOTD = "/usr/sbin/knotd"
NAMED = "/usr/sbin/named"
TSIG_NAME = "xfr"
TSIG_SECRET = "c2VjcmV0LWZvci10aGUtdHJhbnNmZXItdGVzdHMtMDEyMzQ1Njc4OQ=="  # base64, 32+ bytes
TSIG_FLAG = f"{TSIG_NAME}:hmac-sha256:{TSIG_SECRET}"


def missing(binary: str) -> str | None:
    """Why a secondary cannot run here (for ``pytest.skip``), or None."""
    if shutil.which(binary) is None and not Path(binary).exists():
        return f"{binary} is not installed (apt-get install knot bind9, or `make tools`)"
    return None


class Secondary:
    """One secondary process: ``start()``, ``serial(zone)``, ``log()``, ``stop()``."""

    kind = "secondary"

    def __init__(self, primary: tuple[str, int], zones: Sequence[str], *, tsig: bool = True) -> None:
        self.primary = primary
        self.zones = [z.rstrip(".") for z in zones]
        self.tsig = tsig
        self.port = free_dns_port()
        self.address = ("127.0.0.1", self.port)
        self.dir = Path(tempfile.mkdtemp(prefix=f"dnssync-{self.kind}-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.kind}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def write_config(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self.write_config()
        out = open(self.dir / "stdout.log", "wb")  # noqa: SIM115 - kept open by the child
        self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, cwd=self.dir)
        out.close()

    def log(self) -> str:
        parts = []
        for path in (self.log_path, self.dir / "stdout.log"):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def transfers(self, zone: str) -> list[str]:
        """The kinds of the completed incoming transfers of ``zone`` in the log, oldest first ("IXFR"/"AXFR")."""
        raise NotImplementedError

    async def serial(self, zone: str) -> int | None:
        """The SOA serial it serves for ``zone`` (None: it does not serve the zone yet)."""
        try:
            msg = await dns.asyncquery.udp(dns.message.make_query(zone, "SOA"), self.address[0], port=self.port,
                                           timeout=1.0)
        except (OSError, dns.exception.DNSException):
            return None
        if msg.rcode() != dns.rcode.NOERROR:
            return None
        for rrset in msg.answer:
            if rrset.rdtype == dns.rdatatype.SOA:
                return int(rrset[0].serial)
        return None

    async def wait_serial(self, zone: str, serial: int, timeout: float = 20.0) -> float:
        """Wait until it serves ``serial`` (or newer) for ``zone``; the seconds it took."""
        started = time.monotonic()
        last: int | None = None
        while time.monotonic() - started < timeout:
            last = await self.serial(zone)
            if last is not None and last >= serial:
                return time.monotonic() - started
            await asyncio.sleep(0.02)
        raise AssertionError(f"{self.kind} still serves serial {last} for {zone} after {timeout}s, wanted {serial}"
                             f"\n--- log ---\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


class Knot(Secondary):
    kind = "knot"

    def command(self) -> list[str]:
        return [KNOTD, "-c", str(self.dir / "knot.conf")]

    def write_config(self) -> None:
        d = self.dir
        (d / "db").mkdir(exist_ok=True)
        (d / "zones").mkdir(exist_ok=True)
        key = f"    key: {TSIG_NAME}\n" if self.tsig else ""
        zones = "".join(f"  - domain: {z}.\n    master: primary\n    acl: from_primary\n" for z in self.zones)
        (d / "knot.conf").write_text(f"""server:
    rundir: "{d}"
    listen: 127.0.0.1@{self.port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: "{self.log_path}"
    any: info
database:
    storage: "{d}/db"
key:
  - id: {TSIG_NAME}
    algorithm: hmac-sha256
    secret: {TSIG_SECRET}
remote:
  - id: primary
    address: {self.primary[0]}@{self.primary[1]}
{key}acl:
  - id: from_primary
    address: 127.0.0.0/8
    action: notify
{key}template:
  - id: default
    storage: "{d}/zones"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: changes
    semantic-checks: off
    refresh-min-interval: 2
    retry-min-interval: 1
    retry-max-interval: 2
zone:
{zones}""")

    def transfers(self, zone: str) -> list[str]:
        out = []
        for line in self.log().splitlines():
            if f"[{zone.rstrip('.')}.]" in line and "incoming" in line and "finished" in line:
                out.append("IXFR" if "IXFR" in line else "AXFR")
        return out


class Bind(Secondary):
    kind = "named"

    def command(self) -> list[str]:
        return [NAMED, "-f", "-4", "-n", "1", "-c", str(self.dir / "named.conf")]

    def write_config(self) -> None:
        d = self.dir
        key = f" key {TSIG_NAME}" if self.tsig else ""
        primaries = f"{self.primary[0]} port {self.primary[1]}{key}"
        zones = "".join(f"""zone "{z}" {{ type secondary; primaries {{ {primaries}; }};
    file "{d}/{z}.db"; allow-notify {{ 127.0.0.0/8; }}; }};
""" for z in self.zones)
        (d / "named.conf").write_text(f"""options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {self.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    notify no;
    dnssec-validation no;
    min-refresh-time 2;
    min-retry-time 1;
    max-retry-time 2;
    minimal-responses no;
}};
key "{TSIG_NAME}" {{ algorithm hmac-sha256; secret "{TSIG_SECRET}"; }};
controls {{ }};
logging {{
    channel main {{ file "{self.log_path}"; severity debug 3; print-time yes; print-category yes; }};
    channel quiet {{ file "{d}/other.log"; severity info; }};
    category default {{ quiet; }};
    category xfer-in {{ main; }};
    category notify {{ main; }};
}};
{zones}""")

    def transfers(self, zone: str) -> list[str]:
        """BIND (xfer-in at debug 3) logs "got incremental response" before an IXFR's completion line; an AXFR
        (or an IXFR answered with the whole zone: "got nonincremental response") has no such line."""
        out = []
        name = zone.rstrip(".")
        incremental = False
        for line in self.log().splitlines():
            if f"transfer of '{name}/IN'" not in line:
                continue
            if "got incremental response" in line:
                incremental = True
            elif "got nonincremental response" in line:
                incremental = False
            elif "Transfer completed" in line:
                out.append("IXFR" if incremental else "AXFR")
                incremental = False
        return out
