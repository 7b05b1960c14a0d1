"""NOTIFY (RFC 1996) to the secondaries named by ``--notify HOST[:PORT][,...]`` whenever a zone's serial moves.

Rules:

* **coalesced**: per zone and target one sender task; a serial that moves while a NOTIFY is in flight (or
  waiting to be retried) only marks the zone changed again, and the next NOTIFY carries the SOA of that moment
  - ten changes in a burst are one or two NOTIFYs, never ten queued ones;
* **retried until answered**: a NOTIFY is sent over UDP and waits ``timeout`` seconds for its acknowledgement
  (QR, opcode NOTIFY, our ID, NOERROR); a refusal (REFUSED, NOTAUTH, NOTIMP, FORMERR: the secondary does not
  serve the zone or does not take NOTIFYs from us - logged, another try would say the same) ends the tries too;
  no answer, a SERVFAIL or a send failure is retried after 1 s, doubling up to ``max_delay`` (RFC 1996 §3.6
  leaves the interval to us; its 60 s is too slow for "within a second"), for as long as it takes - a change
  made meanwhile is carried by the next try;
* the SOA (and its serial) come from the caller at send time (:mod:`resolver.transfer` builds the message, with
  TSIG when a key is configured); a host name is resolved at every try;
* each NOTIFY is logged (``notify_sent`` with zone, target, serial, result, tries) and counted
  (``dnssync_resolver_notifies_total{result}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import Callable, Sequence

import dns.tsig
import structlog
from prometheus_client import Counter

from resolver import transfer

log = structlog.get_logger("resolver.notify")

NOTIFIES = Counter("dnssync_resolver_notifies", "NOTIFY messages sent to secondaries, by outcome", ["result"])

DEFAULT_PORT = 53
# Answers that end the retries: the acknowledgement, and refusals another try would only repeat (the secondary
# does not serve the zone, or does not take NOTIFYs from us).
FINAL = frozenset({"ok", "refused", "notauth", "notimp", "formerr"})


def parse_targets(items: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """``--notify`` values: comma-separated ``HOST``, ``HOST:PORT`` or ``[IPv6]:PORT`` (repeatable); raises
    ``ValueError``."""
    out: list[tuple[str, int]] = []
    for item in items:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            host, port = part, DEFAULT_PORT
            if part.startswith("["):
                host, sep, rest = part[1:].partition("]")
                if not sep or (rest and not rest.startswith(":")):
                    raise ValueError(f"--notify: expected HOST, HOST:PORT or [IPv6]:PORT, got {part!r}")
                port_text = rest[1:] if rest else str(DEFAULT_PORT)
            elif part.count(":") == 1:
                host, _, port_text = part.partition(":")
            else:
                port_text = str(DEFAULT_PORT)
            if not host or not port_text.isdigit() or not 0 < int(port_text) <= 65535:
                raise ValueError(f"--notify: bad host or port in {part!r}")
            port = int(port_text)
            out.append((host, port))
    return tuple(dict.fromkeys(out))


SoaOf = Callable[[str], "tuple[int, bytes] | None"]  # zone -> (serial, SOA wire) now, None: not ready


class _Target:
    """One (zone, secondary) pair: a changed flag and the task that sends."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class Notifier:
    """Sends NOTIFYs (module docstring). ``changed(zone)`` after a serial moved; ``await close()`` at the end."""

    def __init__(self, targets: Sequence[tuple[str, int]], soa_of: SoaOf, *, key: dns.tsig.Key | None = None,
                 timeout: float = 1.0, first_delay: float = 1.0, max_delay: float = 30.0) -> None:
        self.targets = tuple(targets)
        self.soa_of = soa_of
        self.key = key
        self.timeout = timeout
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._pairs: dict[tuple[str, tuple[str, int]], _Target] = {}
        self._closed = False

    def changed(self, zone: str) -> None:
        """The zone's serial moved: every target gets a NOTIFY (coalesced with one in flight)."""
        if self._closed:
            return
        for target in self.targets:
            pair = self._pairs.get((zone, target))
            if pair is None:
                pair = self._pairs[(zone, target)] = _Target()
            pair.changed.set()
            if pair.task is None or pair.task.done():
                pair.task = asyncio.create_task(self._run(zone, target, pair), name=f"notify-{zone}-{target[0]}")

    async def _run(self, zone: str, target: tuple[str, int], pair: _Target) -> None:
        while True:
            await pair.changed.wait()
            pair.changed.clear()
            delay = self.first_delay
            tries = 0
            while True:
                now = self.soa_of(zone)
                if now is None:
                    return
                serial, soa = now
                tries += 1
                result = await self._send_once(zone, soa, target)
                NOTIFIES.labels(result).inc()
                log.info("notify_sent", zone=zone, target=f"{target[0]}:{target[1]}", serial=serial, result=result,
                         tries=tries)
                if result in FINAL:
                    break
                with contextlib.suppress(TimeoutError):  # a newer change retries at once
                    await asyncio.wait_for(pair.changed.wait(), delay)
                pair.changed.clear()
                delay = min(delay * 2, self.max_delay)

    async def _send_once(self, zone: str, soa: bytes, target: tuple[str, int]) -> str:
        loop = asyncio.get_running_loop()
        qid = random.randrange(0x10000)
        message = transfer.notify_message(zone, soa, qid, self.key)
        try:
            infos = await loop.getaddrinfo(target[0], target[1], type=socket.SOCK_DGRAM)
            family, _, _, _, addr = infos[0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as exc:
            return f"error:{exc.__class__.__name__}"
        sock.setblocking(False)
        try:
            sock.connect(addr)
            await loop.sock_sendall(sock, message)
            async with asyncio.timeout(self.timeout):
                while True:  # skip strays (an old try's late answer has another ID)
                    reply = await loop.sock_recv(sock, 65535)
                    verdict = transfer.check_notify_reply(reply, qid, self.key)
                    if verdict != "not_a_reply":
                        return verdict
        except TimeoutError:
            return "timeout"
        except OSError as exc:
            return f"error:{exc.__class__.__name__}"
        finally:
            sock.close()

    async def close(self) -> None:
        self._closed = True
        tasks = [p.task for p in self._pairs.values() if p.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
