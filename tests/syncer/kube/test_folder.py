"""The folder watch: real files in tmp_path, real watchfiles (inotify) events, ``on_changes`` awaited through a queue.

A "nothing changed" claim is checked with a barrier: a marker file added after the action, whose change must be
the next (and only) one handed over - every event before it has been processed by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from syncer.kube.changes import ObjectChange
from syncer.kube.folder import EMPTY_GRACE, ManifestWatch

pytestmark = pytest.mark.timeout(30)
WAIT = 5.0


def service(name: str, ip: str, namespace: str = "shop", **metadata: str) -> str:
    extra = "".join(f"  {key}: {value}\n" for key, value in metadata.items())
    return (f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {namespace}\n{extra}"
            f"  annotations:\n    external-dns.alpha.kubernetes.io/hostname: {name}.example.org\n"
            f"spec:\n  type: LoadBalancer\n  ports:\n    - port: 80\n"
            f"status:\n  loadBalancer:\n    ingress:\n      - ip: {ip}\n")


BAD_LINE = len(service("x", "192.0.2.1").splitlines()) + 1  # of service(...) + " status: x" (bad indentation)


def ip_of(obj: dict[str, Any] | None) -> str | None:
    ingress = (obj or {}).get("status", {}).get("loadBalancer", {}).get("ingress") or [{}]
    return ingress[0].get("ip")


def what(change: ObjectChange) -> tuple[str, str, str | None, str | None]:
    """``(name, added|modified|deleted, old IP, new IP)``."""
    action = "added" if change.old is None else "deleted" if change.new is None else "modified"
    return change.key[1], action, ip_of(change.old), ip_of(change.new)


class Changes:
    """The ``on_changes`` under test: every batch goes into a queue the test awaits."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[list[ObjectChange]] = asyncio.Queue()
        self.markers = 0

    def __call__(self, changes: Sequence[ObjectChange]) -> None:
        self.queue.put_nowait(list(changes))

    async def next(self, timeout: float = WAIT) -> list[tuple[str, str, str | None, str | None]]:
        return [what(c) for c in await asyncio.wait_for(self.queue.get(), timeout)]

    async def until_marker(self, folder: Path) -> list[tuple[str, str, str | None, str | None]]:
        """Add a marker Service to ``folder``; every change handed over before it (the marker's own left out)."""
        self.markers += 1
        name = f"marker-{self.markers}"
        (folder / f"{name}.yaml").write_text(service(name, "192.0.2.254"))
        before: list[tuple[str, str, str | None, str | None]] = []
        while True:
            batch = await self.next()
            before += [c for c in batch if c[0] != name]
            if any(c[0] == name for c in batch):
                return before


@contextlib.asynccontextmanager
async def watching(*paths: Path | str, **options: Any) -> AsyncIterator[tuple[ManifestWatch, Changes]]:
    changes = Changes()
    watch = ManifestWatch([str(p) for p in paths], on_changes=changes, debounce_ms=20, step_ms=5, **options)
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.wait_for(watch.ready.wait(), WAIT)
        yield watch, changes
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return result


def services(watch: ManifestWatch) -> dict[str, str | None]:
    return {name: ip_of(obj) for (_, name), obj in sorted(watch.caches["Service"].items())}


def replace_atomically(path: Path, text: str) -> None:
    """Save as editors and kubectl do: write a temporary file next to it, rename it over."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


# -- load --------------------------------------------------------------------------------------------------


async def test_first_load_hands_over_every_object_and_a_bad_file_contributes_nothing(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(service("web", "203.0.113.10"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "api.yml").write_text(service("api", "203.0.113.20") + "---\nkind: Node\n"
                                              "metadata: {name: n1}\n")
    (tmp_path / "broken.yaml").write_text(service("broken", "203.0.113.30") + " status: x\n")
    async with watching(tmp_path) as (watch, changes):
        assert sorted(await changes.next()) == [("api", "added", None, "203.0.113.20"),
                                                ("n1", "added", None, None),
                                                ("web", "added", None, "203.0.113.10")]
        assert services(watch) == {"api": "203.0.113.20", "web": "203.0.113.10"}
        assert list(watch.caches["Node"]) == [("", "n1")]
        reason = watch.invalid_files[str(tmp_path / "broken.yaml")]
        assert f"broken.yaml: document 1, line {BAD_LINE}: invalid YAML" in reason
        assert watch.health()["invalid_files"] == watch.invalid_files
        assert watch.health()["ready"] is True


async def test_a_missing_path_at_start_is_waited_for(tmp_path: Path) -> None:
    folder = tmp_path / "later"
    watch = ManifestWatch([str(folder)], backoff_max=0.2)
    task = asyncio.create_task(watch.run())
    try:
        await eventually(lambda: watch.last_error, "the missing folder reported")
        assert "later: no such file or directory" in str(watch.health()["last_error"])
        assert not watch.ready.is_set()
        folder.mkdir()
        (folder / "web.yaml").write_text(service("web", "203.0.113.10"))
        await asyncio.wait_for(watch.ready.wait(), WAIT)
        assert services(watch) == {"web": "203.0.113.10"}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_stdin_is_read_once_and_the_folders_are_still_followed(tmp_path: Path) -> None:
    with capture_logs() as logs:
        async with watching("-", tmp_path, stdin=io.StringIO(service("piped", "203.0.113.40"))) as (watch, changes):
            assert await changes.next() == [("piped", "added", None, "203.0.113.40")]
            (tmp_path / "web.yaml").write_text(service("web", "203.0.113.10"))
            assert await changes.next() == [("web", "added", None, "203.0.113.10")]
            assert services(watch) == {"piped": "203.0.113.40", "web": "203.0.113.10"}
    assert [e["event"] for e in logs if e["event"] == "manifest_stdin_not_watched"] == ["manifest_stdin_not_watched"]


async def test_an_edit_between_the_load_and_the_watch_is_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(service("web", "203.0.113.10"))
    changes = Changes()
    watch = ManifestWatch([str(tmp_path)], on_changes=changes, debounce_ms=20, step_ms=5)
    await watch.load()
    assert await changes.next() == [("web", "added", None, "203.0.113.10")]
    path.write_text(service("web", "203.0.113.11"))  # same size, most likely within the same timestamp tick
    task = asyncio.create_task(watch.resume())
    try:
        assert await changes.next() == [("web", "modified", "203.0.113.10", "203.0.113.11")]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- edits -------------------------------------------------------------------------------------------------


async def test_an_edit_is_one_modified_change_for_that_object(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(service("web", "203.0.113.10") + "---\n" + service("db", "203.0.113.50"))
    async with watching(tmp_path) as (watch, changes):
        await changes.next()
        (tmp_path / "web.yaml").write_text(service("web", "203.0.113.11") + "---\n" + service("db", "203.0.113.50"))
        assert await changes.next() == [("web", "modified", "203.0.113.10", "203.0.113.11")]
        assert await changes.until_marker(tmp_path) == []
        assert services(watch)["web"] == "203.0.113.11"
        assert watch.health()["silent_seconds"] == 0  # armed: quiet files are not a silent source


async def test_an_atomic_rename_over_save_is_one_change(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(service("web", "203.0.113.10"))
    async with watching(tmp_path) as (watch, changes):
        await changes.next()
        replace_atomically(tmp_path / "web.yaml", service("web", "203.0.113.12"))
        assert await changes.next() == [("web", "modified", "203.0.113.10", "203.0.113.12")]
        assert await changes.until_marker(tmp_path) == []
        assert services(watch)["web"] == "203.0.113.12"


async def test_a_file_named_on_its_own_is_followed_through_rename_over_saves(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(service("web", "203.0.113.10"))
    async with watching(path) as (watch, changes):
        await changes.next()
        for ip in ("203.0.113.13", "203.0.113.14"):  # the second save proves the first did not lose the watch
            replace_atomically(path, service("web", ip))
            [(_, action, _, new)] = await changes.next()
            assert (action, new) == ("modified", ip)
        assert watch.invalid_files == {}


async def test_an_edit_of_fields_the_projection_drops_is_no_change(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(service("web", "203.0.113.10"))
    async with watching(tmp_path) as (watch, changes):
        await changes.next()
        edited = service("web", "203.0.113.10", resourceVersion='"42"').replace("port: 80", "port: 8080")
        (tmp_path / "web.yaml").write_text(edited)
        assert await changes.until_marker(tmp_path) == []
        assert watch.caches["Service"][("shop", "web")]["metadata"]["resourceVersion"] == "42"  # kept, not compared


async def test_a_new_file_adds_and_a_removed_file_removes(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(service("web", "203.0.113.10"))
    async with watching(tmp_path) as (watch, changes):
        await changes.next()
        (tmp_path / "api.yaml").write_text(service("api", "203.0.113.20"))
        assert await changes.next() == [("api", "added", None, "203.0.113.20")]
        (tmp_path / "web.yaml").unlink()
        assert await changes.next() == [("web", "deleted", "203.0.113.10", None)]
        assert services(watch) == {"api": "203.0.113.20"}


async def test_a_file_renamed_or_moved_within_the_folders_is_no_change(tmp_path: Path) -> None:
    (tmp_path / "team").mkdir()
    (tmp_path / "web.yaml").write_text(service("web", "203.0.113.10"))
    async with watching(tmp_path) as (watch, changes):
        await changes.next()
        os.rename(tmp_path / "web.yaml", tmp_path / "team" / "frontend.yaml")
        assert await changes.until_marker(tmp_path) == []
        assert services(watch)["web"] == "203.0.113.10"
        assert watch.health()["files"] == 2  # the moved file and the marker


async def test_folders_moved_in_and_removed_below_a_watched_folder(tmp_path: Path) -> None:
    watched, outside = tmp_path / "watched", tmp_path / "outside"
    watched.mkdir()
    (outside / "team" / "deep").mkdir(parents=True)
    (outside / "team" / "a.yaml").write_text(service("a", "203.0.113.1"))
    (outside / "team" / "deep" / "b.yaml").write_text(service("b", "203.0.113.2"))
    async with watching(watched) as (watch, changes):
        os.rename(outside / "team", watched / "team")
        got = await changes.next()
        while len(got) < 2:  # the folder and its files may come in separate batches
            got += await changes.next()
        assert sorted(got) == [("a", "added", None, "203.0.113.1"), ("b", "added", None, "203.0.113.2")]
        shutil.rmtree(watched / "team")
        got = await changes.next()
        while len(got) < 2:
            got += await changes.next()
        assert sorted(got) == [("a", "deleted", "203.0.113.1", None), ("b", "deleted", "203.0.113.2", None)]
        assert services(watch) == {}


# -- bad files -----------------------------------------------------------------------------------------------


async def test_a_half_written_file_keeps_its_objects_until_it_parses_again(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(service("web", "203.0.113.10"))
    half_written = service("web", "203.0.113.11") + " status: x\n"
    with capture_logs() as logs:
        async with watching(tmp_path) as (watch, changes):
            await changes.next()
            path.write_text(half_written)
            assert await changes.until_marker(tmp_path) == []
            assert services(watch)["web"] == "203.0.113.10"
            assert f"web.yaml: document 1, line {BAD_LINE}: invalid YAML" in watch.invalid_files[str(path)]
            assert str(path) in watch.health()["invalid_files"]
            path.write_text(half_written)  # the same bad content again: not logged again
            path.write_text(half_written.replace("status: x", "status: y"))  # new bad content: logged
            assert await changes.until_marker(tmp_path) == []
            path.write_text(service("web", "203.0.113.11"))
            assert await changes.next() == [("web", "modified", "203.0.113.10", "203.0.113.11")]
            assert watch.invalid_files == {}
    invalid = [e for e in logs if e["event"] == "manifest_invalid"]
    assert [e["file"] for e in invalid] == [str(path), str(path)]
    assert f"line {BAD_LINE}" in invalid[0]["error"] and invalid[0]["log_level"] == "warning"
    assert [e["file"] for e in logs if e["event"] == "manifest_valid_again"] == [str(path)]


async def test_a_file_truncated_to_nothing_is_a_save_in_progress(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(service("web", "203.0.113.10"))
    async with watching(tmp_path) as (watch, changes):
        await changes.next()
        path.write_text("")
        assert await changes.until_marker(tmp_path) == []
        path.write_text(service("web", "203.0.113.11"))
        assert await changes.next() == [("web", "modified", "203.0.113.10", "203.0.113.11")]
        started = time.monotonic()
        path.write_text("")  # and left empty: it is meant
        assert await changes.next() == [("web", "deleted", "203.0.113.11", None)]
        assert time.monotonic() - started >= EMPTY_GRACE
        assert "web" not in services(watch)


async def test_a_named_file_that_disappears_keeps_its_objects_until_it_is_back(tmp_path: Path) -> None:
    path, other = tmp_path / "web.yaml", tmp_path / "other"
    other.mkdir()
    path.write_text(service("web", "203.0.113.10"))
    async with watching(path, other) as (watch, changes):
        await changes.next()
        path.unlink()
        await eventually(lambda: str(path) in watch.invalid_files, "the missing file reported")
        assert "no such file or directory" in watch.invalid_files[str(path)]
        assert await changes.until_marker(other) == []
        assert services(watch)["web"] == "203.0.113.10"
        path.write_text(service("web", "203.0.113.15"))
        assert await changes.next() == [("web", "modified", "203.0.113.10", "203.0.113.15")]
        assert watch.invalid_files == {}


# -- several files, hidden files --------------------------------------------------------------------------------


async def test_two_files_defining_one_object_the_later_path_wins(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(service("web", "203.0.113.1"))
    (tmp_path / "b.yaml").write_text(service("web", "203.0.113.2"))
    with capture_logs() as logs:
        async with watching(tmp_path) as (watch, changes):
            assert await changes.next() == [("web", "added", None, "203.0.113.2")]
            assert services(watch) == {"web": "203.0.113.2"}
            (tmp_path / "a.yaml").write_text(service("web", "203.0.113.3"))  # the loser's edit changes nothing
            assert await changes.until_marker(tmp_path) == []
            (tmp_path / "b.yaml").unlink()  # the winner goes: the other copy takes over
            assert await changes.next() == [("web", "modified", "203.0.113.2", "203.0.113.3")]
    [warning] = [e for e in logs if e["event"] == "manifest_duplicate_object"]
    assert warning["winner"] == str(tmp_path / "b.yaml") and warning["ignored"] == [str(tmp_path / "a.yaml")]
    assert warning["object"] == "shop/web" and warning["log_level"] == "warning"


async def test_hidden_files_and_folders_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(service("web", "203.0.113.10"))
    async with watching(tmp_path) as (watch, changes):
        await changes.next()
        (tmp_path / ".web.yaml.swp").write_text(service("swap", "203.0.113.99"))
        (tmp_path / ".git").mkdir()
        (tmp_path / ".git" / "old.yaml").write_text(service("old", "203.0.113.98"))
        assert await changes.until_marker(tmp_path) == []
        assert set(services(watch)) == {"web", "marker-1"}


# -- symlink swaps ------------------------------------------------------------------------------------------------


@dataclass
class ConfigMapMount:
    """A folder laid out as the kubelet writes a ConfigMap volume, updated as its AtomicWriter does: the keys go
    into a new ``..<timestamp>`` folder, ``..data`` is swapped to it by a rename, the old folder is removed."""

    path: Path
    version: int = 0

    def publish(self, files: dict[str, str]) -> None:
        self.version += 1
        data = self.path / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        new = self.path / f"..2026_01_01_00_00_00.{self.version:09d}"
        new.mkdir()
        for name, text in files.items():
            (new / name).write_text(text)
            if not (self.path / name).is_symlink():
                os.symlink(f"..data/{name}", self.path / name)
        os.symlink(new.name, self.path / "..data_tmp")
        os.replace(self.path / "..data_tmp", data)
        for entry in self.path.iterdir():
            if not entry.name.startswith(".") and entry.name not in files:
                entry.unlink()
        if old:
            shutil.rmtree(self.path / old)


@pytest.mark.parametrize("watched", ["the mount", "one key"])
async def test_a_configmap_volume_update_is_followed(tmp_path: Path, watched: str) -> None:
    mount = ConfigMapMount(tmp_path / "config")
    mount.path.mkdir()
    mount.publish({"web.yaml": service("web", "203.0.113.10")})
    async with watching(mount.path if watched == "the mount" else mount.path / "web.yaml") as (watch, changes):
        assert await changes.next() == [("web", "added", None, "203.0.113.10")]  # read once, not three times
        assert watch.health()["files"] == 1
        mount.publish({"web.yaml": service("web", "203.0.113.11")})
        assert await changes.next() == [("web", "modified", "203.0.113.10", "203.0.113.11")]
        mount.publish({"web.yaml": service("web", "203.0.113.12")})
        assert await changes.next() == [("web", "modified", "203.0.113.11", "203.0.113.12")]
        if watched == "the mount":
            mount.publish({"web.yaml": service("web", "203.0.113.12"), "api.yaml": service("api", "203.0.113.20")})
            assert await changes.next() == [("api", "added", None, "203.0.113.20")]
            mount.publish({"api.yaml": service("api", "203.0.113.20")})
            assert await changes.next() == [("web", "deleted", "203.0.113.12", None)]


async def test_a_watched_folder_that_is_a_swapped_symlink_is_followed(tmp_path: Path) -> None:
    """git-sync publishes a checkout by pointing a symlink at a new worktree and removing the old one."""
    for worktree, ip in (("wt1", "203.0.113.10"), ("wt2", "203.0.113.11")):
        (tmp_path / worktree / "k8s").mkdir(parents=True)
        (tmp_path / worktree / "k8s" / "web.yaml").write_text(service("web", ip))
    os.symlink("wt1", tmp_path / "current")
    async with watching(tmp_path / "current" / "k8s") as (watch, changes):
        assert await changes.next() == [("web", "added", None, "203.0.113.10")]
        os.symlink("wt2", tmp_path / "current.tmp")
        os.replace(tmp_path / "current.tmp", tmp_path / "current")
        shutil.rmtree(tmp_path / "wt1")
        assert await changes.next() == [("web", "modified", "203.0.113.10", "203.0.113.11")]
        (tmp_path / "wt2" / "k8s" / "api.yaml").write_text(service("api", "203.0.113.20"))  # watched after the swap
        assert await changes.next() == [("api", "added", None, "203.0.113.20")]
        assert watch.resumes >= 1 and watch.reloads == 0  # re-armed on the new target, nothing reloaded
