"""Every case of the shared table through Store + Answerer.respond (no sockets), twice: miss then cache hit."""

from __future__ import annotations

import pytest

from resolver.answers import Answerer
from tests.resolver.cases import CASES, FIXTURE, MODES, ZONES, Case, check
from tests.resolver.harness import ask, load


@pytest.fixture(scope="module")
def answerers() -> dict[str, Answerer]:
    store = load(FIXTURE)
    return {mode: Answerer(store, ZONES, own_records_only=mode == "own", subtree_answers=mode == "subtree")
            for mode in MODES}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(answerers: dict[str, Answerer], case: Case) -> None:
    answerer = answerers[case.mode]
    for _ in range(2):  # the second time comes from the answer cache
        check(case, ask(answerer, case.qname, case.qtype, tcp=case.tcp_only))
        check(case, ask(answerer, case.qname, case.qtype, edns=0, payload=4096))


def test_soa_serial_is_the_zone_latest_revision(answerers: dict[str, Answerer]) -> None:
    # The fixture's last key in skydns.test. decides the serial (keys get revisions 1..N in order).
    last = max(i + 1 for i, (key, _) in enumerate(FIXTURE) if key.startswith("/skydns/test/skydns/"))
    case = next(c for c in CASES if c.qname == "skydns.test." and c.qtype == "SOA")
    check(case, ask(answerers["default"], "skydns.test.", "SOA"), serial=last)
