"""``make demo`` (``python -m devtools.demo``): README command one runs the whole product and leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.syncer.helpers import ROOT


@pytest.mark.timeout(120)
def test_the_demo_syncs_serves_every_example_name_and_stops_everything() -> None:
    done = subprocess.run([sys.executable, "-m", "devtools.demo"], cwd=ROOT, capture_output=True, text=True,
                          timeout=110)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "6 to create, 0 to update, 0 to delete" in out
    assert "records not ours, untouched: 2 of 2" in out
    for line in ("web.example.org. 60 A 203.0.113.10", "_game._tcp.game.example.org. 300 SRV 10 100 30777 "
                 "game.example.org.", "docs.example.org. 300 CNAME docs.example.net."):
        assert line in out
    assert "=== done: every name answered" in out
    assert out.rstrip().endswith("stopped the resolver and etcd")
