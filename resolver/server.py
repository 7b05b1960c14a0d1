"""The DNS transport: UDP and TCP on one address, handing each query's bytes to a responder.

The responder is any ``respond(query: bytes, *, tcp: bool) -> bytes | None`` (the :class:`resolver.answers.Answerer`
in production). The UDP hot path is kept minimal: the socket is read directly when the event loop says it is
readable (``add_reader``; up to 64 datagrams per wake-up), each datagram is one ``respond`` call and one plain
``sendto`` - no transport or protocol callback per packet, no logging, no allocation of our own (this measured
clearly faster than a ``DatagramProtocol`` under uvloop: ~31k vs 42-71k queries/s on a busy 2-core box).

A server made with ``with_client=True`` calls ``respond(query, tcp=..., client=addr)`` with the packet's source
address (``recvfrom``'s address over UDP, the peer name over TCP; never anything the packet claims, such as ECS),
for access lists and views. Any responder may answer later: a reply that is an ``asyncio.Future`` is sent when it
resolves to bytes (over UDP to that address; over TCP on that connection, possibly after later answers, as
RFC 7766 §7 allows for pipelined queries).

Nothing a client sends may stop the server: every packet and every connection is handled inside its own
``try``, failures are counted (and logged at most once per second).

A reply may also be a :class:`Stream` (over TCP only): many messages - a zone transfer - written one at a time as
the connection drains (the next one is made only when the socket's write buffer is below its high-water mark,
so a 100,000-record zone never sits in memory as messages), contiguously: the connection reads no further query
while it streams, and answers that complete meanwhile (forwarded ones) are written after it.

TCP follows RFC 7766: two-byte length framing, several (pipelined) queries per connection, answers in order.
A connection is closed when no complete query arrives for ``idle_timeout`` seconds (so a slowloris that dribbles
bytes is closed as surely as an idle one), and connections beyond ``max_connections`` are closed at once.

Before the first full load from etcd the server answers SERVFAIL (see :func:`servfail`), never an empty
"does not exist": a resolver that retries another server is better served by SERVFAIL than by a wrong NXDOMAIN.
Those SERVFAILs are counted in ``dnssync_resolver_responses_total{source="loading"}``.

Answer durations (``dnssync_resolver_answer_duration_seconds``, :class:`resolver.metrics.ServerStats`):
one ``perf_counter_ns`` right after a datagram is read (over TCP: after a complete message is taken from the
buffer), one after its answer was handed to ``sendto``/``write``, and the difference counted into a plain-integer
bucket - no prometheus_client call per query. An answer that comes later (an ``asyncio.Future``) is measured from
its query's read to its send, and counted apart (``answered="later"``). Streams (zone transfers), dropped answers
and queries not answered are not measured.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeAlias

import structlog
from prometheus_client import Counter, Gauge

from resolver import metrics

log = structlog.get_logger("resolver.server")

Reply: TypeAlias = "bytes | Stream | asyncio.Future[bytes | None] | None"
Respond = Callable[..., Reply]

SERVER_ERRORS = Counter("dnssync_resolver_server_errors", "Queries or connections that failed inside the server",
                        ["transport"])
TCP_CONNECTIONS = Gauge("dnssync_resolver_tcp_connections", "Open DNS-over-TCP connections")
TCP_REJECTED = Counter("dnssync_resolver_tcp_connections_rejected", "TCP connections closed at once: over the cap")
TCP_IDLE_CLOSED = Counter("dnssync_resolver_tcp_idle_closed", "TCP connections closed for sending no full query "
                          "within the idle timeout")

UDP_DROPPED = Counter("dnssync_resolver_udp_dropped", "UDP answers dropped because the socket's send buffer was full")

HEADER_LEN = 12
UDP_BATCH = 64  # datagrams handled per wake-up before giving TCP and etcd a turn
UDP_READ_SIZE = 65535

LOADING = metrics.ResponseCounts("loading")  # the SERVFAILs of servfail()


class Stream:
    """A reply of many messages over TCP (see the module docstring). ``on_done(completed, messages, size)`` is
    called once: after the last message was handed to the socket, or when the connection went away first."""

    def __init__(self, messages: Iterator[bytes], on_done: Callable[[bool, int, int], None] | None = None) -> None:
        self.messages = messages
        self.on_done = on_done
        self.count = 0
        self.size = 0
        self._done = False

    def next_frame(self) -> bytes | None:
        """The next message with its two-byte length, or None at the end."""
        message = next(self.messages, None)
        if message is None:
            return None
        self.count += 1
        self.size += len(message)
        return len(message).to_bytes(2, "big") + message

    def finish(self, completed: bool) -> None:
        if self._done:
            return
        self._done = True
        close = getattr(self.messages, "close", None)
        if close is not None:
            close()
        if self.on_done is not None:
            self.on_done(completed, self.count, self.size)


class Responder(Protocol):
    def respond(self, query: bytes, *, tcp: bool) -> bytes | None: ...


def servfail(query: bytes, *, tcp: bool = False, client: object = None) -> bytes | None:
    """A SERVFAIL for ``query`` (ID, opcode, RD and the question kept), or ``None`` when it is not a query.

    Each SERVFAIL made is counted as a response with ``source="loading"`` (this is the responder before the load).
    """
    if len(query) < HEADER_LEN or query[2] & 0x80:  # too short, or a response: never answer those
        return None
    end = HEADER_LEN
    qdcount = int.from_bytes(query[4:6], "big")
    if qdcount == 1:
        try:
            while query[end]:
                if query[end] & 0xC0:
                    return None
                end += query[end] + 1
            end += 5  # the root label, QTYPE, QCLASS
        except IndexError:
            return None
        if end > len(query):
            return None
    elif qdcount != 0:
        return None
    flags = bytes(((query[2] & 0x79) | 0x84, 0x02))  # QR, opcode and RD kept, AA set, RCODE 2
    LOADING.rcodes[2] += 1
    return query[:2] + flags + qdcount.to_bytes(2, "big") + b"\0\0\0\0\0\0" + query[HEADER_LEN:end]


class _ErrorLog:
    """Count every failure, log at most one line per second (so garbage cannot flood the log)."""

    def __init__(self) -> None:
        self._last = 0.0
        self._suppressed = 0

    def failed(self, transport: str, exc: BaseException) -> None:
        SERVER_ERRORS.labels(transport).inc()
        now = time.monotonic()
        if now - self._last < 1.0:
            self._suppressed += 1
            return
        log.warning("dns_request_failed", transport=transport, error=repr(exc), suppressed=self._suppressed)
        self._last, self._suppressed = now, 0


class _Tcp(asyncio.Protocol):
    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._counted = False
        self._paused = False
        self._peer: object = None
        self._stream: Stream | None = None
        self._after_stream: list[tuple[int, bytes]] = []  # (read at, answer) completed while a stream was written
        self._close_after_stream = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._server
        self._transport = transport  # type: ignore[assignment]
        if len(server.connections) >= server.max_connections:
            TCP_REJECTED.inc()
            transport.abort()  # type: ignore[attr-defined]
            return
        server.connections.add(self)
        self._counted = True
        self._peer = transport.get_extra_info("peername")
        TCP_CONNECTIONS.inc()
        self._deadline = time.monotonic() + server.idle_timeout
        self._timer = asyncio.get_running_loop().call_later(server.idle_timeout, self._check_idle)

    def _check_idle(self) -> None:
        left = self._deadline - time.monotonic()
        if left > 0:
            self._timer = asyncio.get_running_loop().call_later(left, self._check_idle)
            return
        self._timer = None
        TCP_IDLE_CLOSED.inc()
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._stream is not None:  # a stream is being written: later queries wait for its end
            self._buf += data
            return
        try:
            self._consume(data)
        except Exception as exc:
            self._server.errors.failed("tcp", exc)
            if self._transport is not None:
                self._transport.abort()

    def _consume(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        server = self._server
        transport = self._transport
        assert transport is not None
        while len(buf) >= 2:
            size = (buf[0] << 8) | buf[1]
            if size > server.max_message_size or size < HEADER_LEN:
                transport.abort()  # not DNS: there is no way to resynchronise the stream
                return
            if len(buf) < 2 + size:
                break
            query = bytes(buf[2:2 + size])
            del buf[:2 + size]
            start = time.perf_counter_ns()
            self._deadline = time.monotonic() + server.idle_timeout
            if server.with_client:
                reply = server.respond(query, tcp=True, client=self._peer)
            else:
                reply = server.respond(query, tcp=True)
            if isinstance(reply, bytes):
                transport.write(len(reply).to_bytes(2, "big") + reply)
                server.stats.tcp.observe(time.perf_counter_ns() - start)
            elif isinstance(reply, Stream):
                self._start_stream(reply)
                return
            elif reply is not None:
                reply.add_done_callback(functools.partial(self._write_later, start))
            if transport.is_closing():
                return

    def _start_stream(self, stream: Stream) -> None:
        assert self._transport is not None
        self._stream = stream
        if not self._paused:
            self._transport.pause_reading()
        self._pump()

    def _pump(self) -> None:
        """Write the stream's messages while the socket takes them; at its end, go on with buffered queries."""
        transport = self._transport
        stream = self._stream
        if transport is None or stream is None:
            return
        try:
            while not self._paused:
                if transport.is_closing():
                    return
                frame = stream.next_frame()
                if frame is None:
                    break
                transport.write(frame)
                self._deadline = time.monotonic() + self._server.idle_timeout
            else:
                return
        except Exception as exc:
            self._stream = None
            stream.finish(False)
            self._server.errors.failed("tcp", exc)
            transport.abort()
            return
        self._stream = None
        stream.finish(True)
        durations = self._server.stats.tcp_later
        for start, reply in self._after_stream:
            transport.write(len(reply).to_bytes(2, "big") + reply)
            durations.observe(time.perf_counter_ns() - start)
        self._after_stream = []
        if self._close_after_stream:
            transport.close()
            return
        if not self._paused:
            transport.resume_reading()
        if self._buf:
            asyncio.get_running_loop().call_soon(self.data_received, b"")

    def _write_later(self, start: int, future: asyncio.Future[bytes | None]) -> None:
        """Write an answer that came later (a forwarded query), unless the connection is gone meanwhile
        (``start``: when its query was read, ``perf_counter_ns``)."""
        transport = self._transport
        if transport is None or transport.is_closing() or future.cancelled():
            return
        try:
            reply = future.result()
        except Exception as exc:
            self._server.errors.failed("tcp", exc)
            return
        if reply is not None:
            if self._stream is not None:
                self._after_stream.append((start, reply))
                return
            transport.write(len(reply).to_bytes(2, "big") + reply)
            self._server.stats.tcp_later.observe(time.perf_counter_ns() - start)

    def eof_received(self) -> bool:
        if self._stream is not None:  # the client half-closed after asking: finish the stream, then close
            self._close_after_stream = True
            return True
        return False  # answers are written synchronously: close once they are flushed

    def pause_writing(self) -> None:  # the client does not read its answers: stop reading its queries
        if self._transport is not None and not self._paused:
            self._paused = True
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and self._paused:
            self._paused = False
            if self._stream is not None:
                self._pump()
            else:
                self._transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.finish(False)
        if self._counted:
            self._counted = False
            TCP_CONNECTIONS.dec()
            self._server.connections.discard(self)
        self._buf = bytearray()


def free_dns_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host`` right now (for tests, benchmarks and the demo)."""
    udp, tcp = bind_sockets(host, 0)
    port = int(tcp.getsockname()[1])
    udp.close()
    tcp.close()
    return port


def bind_sockets(host: str, port: int, *, reuse_port: bool = False) -> tuple[socket.socket, socket.socket]:
    """A bound UDP socket and a listening TCP socket on the same address (port 0: one free port for both).

    ``reuse_port`` sets ``SO_REUSEPORT`` on both, so that several processes (``--workers``) bind the same address
    and the kernel spreads the clients over them. Raises ``OSError`` when the address cannot be bound.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
    if not infos:
        raise OSError(f"cannot resolve {host!r}")
    family, _, _, _, addr = infos[0]
    for _ in range(20 if port == 0 else 1):
        tcp = socket.socket(family, socket.SOCK_STREAM)
        udp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                tcp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            tcp.bind(addr)
            bound = tcp.getsockname()
            udp.bind((bound[0], bound[1], *addr[2:]) if family == socket.AF_INET6 else (bound[0], bound[1]))
            tcp.listen(1024)
            tcp.setblocking(False)
            udp.setblocking(False)
            with contextlib.suppress(OSError):
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            return udp, tcp
        except OSError:
            tcp.close()
            udp.close()
            if port != 0:
                raise
    raise OSError(f"no free port for both UDP and TCP on {host!r}")


class DnsServer:
    """UDP + TCP DNS on one address. ``bind()`` (may raise ``OSError``), then ``await start()``, ``await close()``."""

    def __init__(self, respond: Respond, *, idle_timeout: float = 10.0, max_connections: int = 1000,
                 max_message_size: int = 65535, with_client: bool = False) -> None:
        self.respond: Respond = respond
        self.with_client = with_client  # call respond(..., client=address): see the module docstring
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_message_size = max_message_size
        self.connections: set[_Tcp] = set()
        self.errors = _ErrorLog()
        self.stats = metrics.ServerStats()  # answer durations (module docstring)
        self._udp_sock: socket.socket | None = None
        self._tcp_sock: socket.socket | None = None
        self._udp_reading = False
        self._tcp: asyncio.base_events.Server | None = None

    def set_responder(self, respond: Respond) -> None:
        """Swap the responder (e.g. from "SERVFAIL, not loaded yet" to the real answerer)."""
        self.respond = respond

    def bind(self, host: str, port: int, *, reuse_port: bool = False) -> tuple[str, int]:
        self._udp_sock, self._tcp_sock = bind_sockets(host, port, reuse_port=reuse_port)
        return self.address

    @property
    def address(self) -> tuple[str, int]:
        assert self._tcp_sock is not None, "bind() first"
        name = self._tcp_sock.getsockname()
        return name[0], name[1]

    async def start(self) -> None:
        assert self._udp_sock is not None and self._tcp_sock is not None, "bind() first"
        loop = asyncio.get_running_loop()
        # UDP: read the socket directly when it is readable, many datagrams per wake-up, and answer with a plain
        # sendto (no transport, no protocol callback per packet): the fastest path asyncio offers.
        loop.add_reader(self._udp_sock.fileno(), self._udp_readable)
        self._udp_reading = True
        self._tcp = await loop.create_server(lambda: _Tcp(self), sock=self._tcp_sock, backlog=1024)
        log.info("dns_listening", address=f"{self.address[0]}:{self.address[1]}", transports="udp,tcp")

    def _udp_readable(self) -> None:
        sock = self._udp_sock
        if sock is None:
            return
        recvfrom, sendto, respond = sock.recvfrom, sock.sendto, self.respond
        with_client = self.with_client
        clock, bounds, bucket = time.perf_counter_ns, metrics.BOUNDS_NS, bisect.bisect_left
        first = bounds[0]
        durations = self.stats.udp
        counts = durations.counts
        spent = 0  # ns of this batch's answers, added to durations.sum_ns once
        for _ in range(UDP_BATCH):
            try:
                data, addr = recvfrom(UDP_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # e.g. an ICMP error queued on the socket: nothing to answer
                continue
            start = clock()
            try:
                reply = respond(data, tcp=False, client=addr) if with_client else respond(data, tcp=False)
                if isinstance(reply, bytes):
                    sendto(reply, addr)
                    took = clock() - start
                    if took <= first:  # most answers are in the first bucket: no bisect for them
                        counts[0] += 1
                    else:
                        counts[bucket(bounds, took)] += 1
                    spent += took
                elif reply is not None and not isinstance(reply, Stream):  # answered later (module docstring)
                    reply.add_done_callback(functools.partial(self._udp_send_later, addr, start))
            except BlockingIOError:  # the send buffer is full: drop this answer, as a loaded server does
                UDP_DROPPED.inc()
            except Exception as exc:  # a bad packet must never stop the server
                self.errors.failed("udp", exc)
        durations.sum_ns += spent

    def _udp_send_later(self, addr: tuple[Any, ...], start: int, future: asyncio.Future[bytes | None]) -> None:
        sock = self._udp_sock
        if sock is None or future.cancelled():
            return
        try:
            reply = future.result()
            if reply is not None:
                sock.sendto(reply, addr)
                self.stats.udp_later.observe(time.perf_counter_ns() - start)
        except BlockingIOError:
            UDP_DROPPED.inc()
        except Exception as exc:
            self.errors.failed("udp", exc)

    async def close(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
        for conn in list(self.connections):
            if conn._transport is not None:
                conn._transport.abort()
        if self._udp_reading and self._udp_sock is not None:
            asyncio.get_running_loop().remove_reader(self._udp_sock.fileno())
            self._udp_reading = False
        if self._tcp is not None:
            await self._tcp.wait_closed()
        self._tcp = None
        for sock in (self._udp_sock, self._tcp_sock):
            if sock is not None:
                sock.close()
        self._udp_sock = self._tcp_sock = None
