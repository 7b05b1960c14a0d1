"""Fixtures of the syncer tests: ``resolver``, a real dnssync-resolver on the test etcd (tests/syncer/running.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.localetcd import LocalEtcd
from tests.syncer.running import resolver_process


@pytest.fixture
def resolver(etcd_server: LocalEtcd, tmp_path: Path) -> Iterator[int]:
    yield from resolver_process(etcd_server, tmp_path)
