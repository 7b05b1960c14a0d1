"""Real recursive resolvers (BIND ``named``, Unbound, Knot Resolver ``kresd``) on loopback, in front of ours.

Each :class:`Recursor` runs its Debian binary as a subprocess with its own temporary directory and config,
listening on ``127.0.0.1:<free port>``, and sends the questions for our zones to one port (our resolver, or a
:class:`Tap` in front of it that records what the recursor asks):

* Unbound: a ``stub-zone`` per zone (it iterates the zone itself, ``qname-minimisation: yes``,
  ``do-not-query-localhost: no``);
* BIND: ``type static-stub`` per zone (it iterates the zone itself, ``qname-minimization relaxed``).
  ``server-addresses`` takes no port, so the global ``port`` option names the stub's port and ``listen-on port``
  BIND's own;
* Knot Resolver: ``policy.STUB`` for the zones' suffixes (kresd sends the whole question; it does not iterate or
  minimise through a stub).

Isolation - nothing ever leaves the machine:

* every name outside the zones is forwarded (Unbound ``forward-zone "."``, BIND ``forward only`` with
  ``forwarders {}`` in the stub zones, kresd ``policy.STUB`` for every other name) to a :class:`Trap` on
  loopback, which answers NODATA for every question and records it. So a recursor's own chase of an out-of-zone
  CNAME target ends in "no data", which is what we answer (we never chase those), and nothing needs the root;
* outgoing queries leave from the source address 127.0.0.1 (Unbound ``outgoing-interface``, BIND
  ``query-source``, kresd ``net.outgoing_v4``): Linux does not route a packet from 127.0.0.1 to a non-loopback
  address (``ip route get 198.41.0.4 from 127.0.0.1``: "Invalid argument"), so even a built-in root hint could
  not be reached. IPv6 is off in all three (``do-ip6: no``, ``named -4``, ``net.ipv6 = false``): a ``::1``
  source *is* routed out;
* root hints (where a file can be given) name 127.0.0.254, where nothing listens;
* no DNSSEC, so no trust-anchor fetching: Unbound runs the iterator module alone (no validator, no trust anchor,
  no RFC 5011 probing or key-tag signalling), BIND ``dnssec-validation no``, kresd ``trust_anchors.remove('.')``
  with its ``priming``, ``ta_update``, ``ta_signal_query``, ``ta_sentinel`` and ``detect_time_*`` modules
  unloaded; no prefetching.

:meth:`Recursor.flush` empties the recursor's caches (Unbound ``unbound-control flush_zone .`` and
``flush_infra all``, BIND ``rndc flush``, kresd ``cache.clear()`` on its control socket); the control channels
are a unix socket (Unbound, kresd) or a loopback port with a random key (BIND).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ClassVar, Self

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset

from devtools.localetcd import free_port
from resolver.server import free_dns_port

LOOPBACK = "127.0.0.1"
NOWHERE = "127.0.0.254"  # root hints point here: a loopback address nothing listens on
ROOT_HINTS = f".  3600000 NS nowhere.invalid.\nnowhere.invalid. 3600000 A {NOWHERE}\n"
START_TIMEOUT = 20.0
CONTROL_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Upstreams:
    """Where a recursor sends questions: names in ``zones`` to our resolver, everything else to the trap."""

    zones: tuple[str, ...]  # absolute names, "example.org."
    stub_port: int  # our resolver (or a Tap in front of it) on 127.0.0.1
    trap_port: int  # the Trap on 127.0.0.1


# --- loopback responders: the trap ("the rest of the world") and the tap in front of our resolver ----------

class Responder:
    """A UDP+TCP DNS listener on 127.0.0.1 in threads of the test process; ``questions`` records the
    ``(name, type)`` of every question it got, in order. Subclasses say how to reply (:meth:`reply`)."""

    def __init__(self) -> None:
        self.port = 0
        self.questions: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []

    def reply(self, wire: bytes, query: dns.message.Message, tcp: bool) -> bytes | None:
        raise NotImplementedError

    def start(self) -> Self:
        self.port = free_dns_port()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((LOOPBACK, self.port))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((LOOPBACK, self.port))
        tcp.listen(16)
        for sock in (udp, tcp):
            sock.settimeout(0.2)
        self._socks = [udp, tcp]
        self._threads = [threading.Thread(target=self._serve_udp, args=(udp,), daemon=True),
                         threading.Thread(target=self._serve_tcp, args=(tcp,), daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        for sock in self._socks:
            sock.close()

    def _handle(self, wire: bytes, tcp: bool) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if not query.question:
            return None
        question = query.question[0]
        self.questions.append((question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype)))
        return self.reply(wire, query, tcp)

    def _serve_udp(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer_datagram, args=(sock, wire, peer), daemon=True).start()

    def _answer_datagram(self, sock: socket.socket, wire: bytes, peer: tuple[str, int]) -> None:
        reply = self._handle(wire, tcp=False)
        if reply is not None:
            with contextlib.suppress(OSError):  # stopped meanwhile
                sock.sendto(reply, peer)

    def _serve_tcp(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve_conn, args=(conn,), daemon=True).start()

    def _serve_conn(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with conn:
            try:
                while True:
                    reply = self._handle(_recv_framed(conn), tcp=True)
                    if reply is None:
                        return
                    conn.sendall(_framed(reply))
            except (OSError, EOFError):
                return


class Trap(Responder):
    """"The rest of the world": answers every question NODATA, with an SOA for ``.`` in authority."""

    def reply(self, wire: bytes, query: dns.message.Message, tcp: bool) -> bytes | None:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA | dns.flags.RA
        response.authority.append(dns.rrset.from_text(
            ".", 30, "IN", "SOA", "trap.invalid. hostmaster.trap.invalid. 1 1800 900 604800 30"))
        return response.to_wire()


class Tap(Responder):
    """Relays every message unchanged to ``127.0.0.1:upstream`` (over the same transport) and its reply back:
    what a recursor asks our resolver, recorded."""

    def __init__(self, upstream: int, timeout: float = 5.0) -> None:
        super().__init__()
        self.upstream = upstream
        self.timeout = timeout

    def reply(self, wire: bytes, query: dns.message.Message, tcp: bool) -> bytes | None:
        kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.settimeout(self.timeout)
            try:
                sock.connect((LOOPBACK, self.upstream))
                if tcp:
                    sock.sendall(_framed(wire))
                    return _recv_framed(sock)
                sock.send(wire)
                return sock.recv(65535)
            except (OSError, EOFError):
                return None


def _framed(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire


def _recv_framed(conn: socket.socket) -> bytes:
    return _recv_exactly(conn, struct.unpack("!H", _recv_exactly(conn, 2))[0])


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


# --- the recursors ----------------------------------------------------------------------------------------------

class RecursorError(RuntimeError):
    """A recursor did not start or did not obey its control command; the message quotes its log."""


class Recursor:
    """One recursor process: ``start()``, ``flush()``, ``stop()``; it serves DNS on ``127.0.0.1:port``."""

    name: ClassVar[str]
    binaries: ClassVar[tuple[str, ...]]  # what must be installed (the first is the server)
    minimises: ClassVar[bool]  # whether it iterates our zones itself, with QNAME minimisation

    def __init__(self, upstreams: Upstreams) -> None:
        self.upstreams = upstreams
        self.port = free_dns_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"dnssync-{self.name}-"))
        self.log = self.dir / "log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @classmethod
    def missing(cls) -> str | None:
        """Why this recursor cannot run here (a binary not installed), or None."""
        absent = [b for b in cls.binaries if not _which(b)]
        if absent:
            return f"{', '.join(absent)} not installed (make tools installs {cls.name} with apt-get when root)"
        return None

    def command(self) -> list[str]:
        raise NotImplementedError

    def write_config(self) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self.write_config()
        self._log_file = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.command(), cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=self._log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RecursorError(f"{self.name} did not start: {self.log_tail()}")
            time.sleep(0.05)  # polling a condition with a deadline
        self.flush()
        return self

    def _answers(self) -> bool:
        """Whether the DNS port answers at all (a question the trap gets, so no cache of our zone fills)."""
        query = dns.message.make_query("ready.probe.test.", "A")
        try:
            dns.query.udp(query, LOOPBACK, port=self.port, timeout=0.5)
        except (dns.exception.Timeout, OSError):
            return False
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def log_since(self, offset: int, lines: int = 12) -> str:
        """The last ``lines`` lines the recursor logged after ``offset`` (a :meth:`log_size`)."""
        with open(self.log, "rb") as log:
            log.seek(offset)
            return "\n".join(log.read().decode(errors="replace").splitlines()[-lines:])

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def control(self, *argv: str) -> str:
        done = subprocess.run(argv, cwd=self.dir, capture_output=True, text=True, timeout=CONTROL_TIMEOUT)
        if done.returncode != 0:
            raise RecursorError(f"{self.name}: {' '.join(argv)} failed: {done.stdout}{done.stderr}")
        return done.stdout


def _which(binary: str) -> str | None:
    return shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin")


class Unbound(Recursor):
    name = "unbound"
    binaries = ("unbound", "unbound-control")
    minimises = True

    @property
    def conf(self) -> Path:
        return self.dir / "unbound.conf"

    def write_config(self) -> None:
        up = self.upstreams
        stubs = "".join(f'stub-zone:\n  name: "{zone}"\n  stub-addr: {LOOPBACK}@{up.stub_port}\n' for zone in up.zones)
        (self.dir / "root.hints").write_text(ROOT_HINTS)
        self.conf.write_text(f"""server:
  verbosity: 1
  num-threads: 1
  interface: {LOOPBACK}@{self.port}
  port: {self.port}
  do-ip4: yes
  do-ip6: no
  outgoing-interface: {LOOPBACK}
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  username: ""
  chroot: ""
  directory: "{self.dir}"
  pidfile: "{self.dir}/unbound.pid"
  use-syslog: no
  logfile: ""
  log-servfail: yes
  module-config: "iterator"
  root-hints: "{self.dir}/root.hints"
  trust-anchor-signaling: no
  root-key-sentinel: no
  qname-minimisation: yes
  qname-minimisation-strict: no
  prefetch: no
  serve-expired: no
  so-reuseport: no
  outgoing-range: 64
  num-queries-per-thread: 32
remote-control:
  control-enable: yes
  control-interface: "{self.dir}/control.sock"
  control-use-cert: no
{stubs}forward-zone:
  name: "."
  forward-addr: {LOOPBACK}@{up.trap_port}
""")

    def command(self) -> list[str]:
        return [_which("unbound") or "unbound", "-d", "-c", str(self.conf)]

    def flush(self) -> None:
        ctl = _which("unbound-control") or "unbound-control"
        self.control(ctl, "-c", str(self.conf), "flush_zone", ".")
        self.control(ctl, "-c", str(self.conf), "flush_infra", "all")


class Bind(Recursor):
    name = "bind"
    binaries = ("named", "rndc")
    minimises = True

    def __init__(self, upstreams: Upstreams) -> None:
        super().__init__(upstreams)
        self.control_port = free_port()
        self.secret = base64.b64encode(os.urandom(32)).decode()

    def write_config(self) -> None:
        up = self.upstreams
        key = f'key "rndc-key" {{ algorithm hmac-sha256; secret "{self.secret}"; }};\n'
        stubs = "".join(f'zone "{zone}" {{ type static-stub; server-addresses {{ {LOOPBACK}; }}; '
                        'forwarders { }; };\n' for zone in up.zones)
        (self.dir / "root.hints").write_text(ROOT_HINTS)
        (self.dir / "rndc.conf").write_text(key + f"""options {{ default-key "rndc-key"; default-server {LOOPBACK};
  default-port {self.control_port}; }};
""")
        (self.dir / "named.conf").write_text(key + f"""controls {{
  inet {LOOPBACK} port {self.control_port} allow {{ {LOOPBACK}; }} keys {{ "rndc-key"; }};
}};
options {{
  directory "{self.dir}";
  pid-file "{self.dir}/named.pid";
  session-keyfile "{self.dir}/session.key";
  managed-keys-directory "{self.dir}";
  port {up.stub_port};  // where queries go by default: the static-stub's server-addresses take no port
  listen-on port {self.port} {{ {LOOPBACK}; }};
  listen-on-v6 {{ none; }};
  query-source address {LOOPBACK};
  recursion yes;
  allow-query {{ 127.0.0.0/8; }};
  allow-recursion {{ 127.0.0.0/8; }};
  dnssec-validation no;
  qname-minimization relaxed;
  forward only;
  forwarders {{ {LOOPBACK} port {up.trap_port}; }};
  empty-zones-enable no;
  notify no;
  prefetch 0;
  max-cache-size 32m;
  automatic-interface-scan no;
}};
zone "." {{ type hint; file "{self.dir}/root.hints"; }};
{stubs}""")

    def command(self) -> list[str]:
        return [_which("named") or "named", "-g", "-4", "-n", "1", "-c", str(self.dir / "named.conf")]

    def flush(self) -> None:
        self.control(_which("rndc") or "rndc", "-c", str(self.dir / "rndc.conf"), "flush")


class KnotResolver(Recursor):
    name = "kresd"
    binaries = ("kresd",)
    minimises = False
    UNLOADED = ("priming", "ta_update", "ta_signal_query", "ta_sentinel", "detect_time_skew", "detect_time_jump")

    @property
    def control_path(self) -> Path:
        return self.dir / "control.sock"

    def write_config(self) -> None:
        up = self.upstreams
        unload = "\n".join(f"modules.unload('{m}')" for m in self.UNLOADED)
        zones = ", ".join(f"'{zone}'" for zone in up.zones)
        (self.dir / "kresd.conf").write_text(f"""log_target('stderr')
log_level('notice')
net.ipv6 = false
net.listen('{LOOPBACK}', {self.port}, {{ kind = 'dns' }})
net.listen('{self.control_path}', nil, {{ kind = 'control' }})
net.outgoing_v4('{LOOPBACK}')
trust_anchors.remove('.')
{unload}
cache.open(16 * MB, 'lmdb://{self.dir}/cache')
policy.add(policy.suffix(policy.STUB('{LOOPBACK}@{up.stub_port}'), policy.todnames({{{zones}}})))
policy.add(policy.all(policy.STUB('{LOOPBACK}@{up.trap_port}')))
""")

    def command(self) -> list[str]:
        return [_which("kresd") or "kresd", "-n", "-c", str(self.dir / "kresd.conf"), str(self.dir)]

    def flush(self) -> None:
        out = self.lua("cache.clear()")
        if "count" not in out:
            raise RecursorError(f"kresd: cache.clear() said {out!r}")

    def lua(self, command: str) -> str:
        """Run one Lua command on kresd's control socket; its printed result."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(CONTROL_TIMEOUT)
            sock.connect(str(self.control_path))
            sock.sendall(command.encode() + b"\n")
            out = b""
            while not out.endswith(b"\n> "):  # a prompt on connect, then the result and the next prompt
                chunk = sock.recv(65536)
                if not chunk:
                    break
                out += chunk
        return out.decode(errors="replace")


RECURSORS: dict[str, type[Recursor]] = {r.name: r for r in (Bind, Unbound, KnotResolver)}


def ask(port: int, name: str, rdtype: str, timeout: float = 8.0) -> dns.message.Message:
    """A client's question (RD set, EDNS0) to 127.0.0.1:port over UDP, retried over TCP when truncated."""
    query = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
    response, _ = dns.query.udp_with_fallback(query, LOOPBACK, port=port, timeout=timeout)
    return response
