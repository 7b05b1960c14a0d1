"""``make demo`` (``python -m devtools.demo``): README command one runs the whole product and leaves nothing behind.

The one-shot part: the plan, foreign records untouched, every example name answered. The live part: a continuous
``dnssync`` over a copy of the examples turns an edit of ``web-loadbalancer.yaml`` into the new DNS answer, the
delay is measured and printed, and SIGTERM stops it with exit code 0.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from devtools.demo import LIVE_TIMEOUT, NEW_IP
from tests.syncer.helpers import ROOT


@pytest.mark.timeout(120)
def test_the_demo_syncs_serves_every_example_name_shows_a_live_edit_and_stops_everything() -> None:
    done = subprocess.run([sys.executable, "-m", "devtools.demo"], cwd=ROOT, capture_output=True, text=True,
                          timeout=110)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "6 to create, 0 to update, 0 to delete" in out
    assert "records not ours, untouched: 2 of 2" in out
    for line in ("web.example.org. 60 A 203.0.113.10", "_game._tcp.game.example.org. 300 SRV 10 100 30777 "
                 "game.example.org.", "docs.example.org. 300 CNAME docs.example.net."):
        assert line in out
    assert "every name answered" in out

    assert "\nbefore: web.example.org A 203.0.113.10\n" in out
    after = re.search(rf"\nafter:  web\.example\.org A {re.escape(NEW_IP)}  \((\d+\.\d) ms from the file write "
                      r"to the DNS answer\)\n", out)
    assert after is not None, out
    assert 0 < float(after.group(1)) < LIVE_TIMEOUT * 1000
    assert out.index("\nbefore: ") < out.index("\nedited web-loadbalancer.yaml") < after.start()
    assert re.search(r"\nstopped dnssync with SIGTERM: exit code 0 after \d+ ms\n", out), out
    assert f"=== done: every name answered, and the edit was served {after.group(1)} ms after" in out
    assert out.rstrip().endswith("stopped the resolver and etcd")
