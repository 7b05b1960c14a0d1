"""--from-manifests: files, folders, stdin, multi-document YAML, Lists, JSON; bad files named with their line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from syncer.kube.manifests import ManifestError, load, manifest_files, parse_file

SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  type: LoadBalancer
status:
  loadBalancer:
    ingress:
      - ip: 203.0.113.10
"""


def names(objs: list[dict]) -> list[str]:
    return [f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}" for o in objs]


def test_multi_document_yaml_keeps_status_and_ignores_other_kinds(tmp_path: Path) -> None:
    (tmp_path / "all.yaml").write_text(SERVICE + "---\n# a comment\n---\napiVersion: apps/v1\nkind: Deployment\n"
                                       "metadata: {name: web}\n---\nkind: Ingress\napiVersion: networking.k8s.io/v1\n"
                                       "metadata: {name: shop}\n")
    snap = load([str(tmp_path / "all.yaml")])
    assert names(snap.services) == ["Service/shop/web"]
    assert snap.services[0]["status"]["loadBalancer"]["ingress"] == [{"ip": "203.0.113.10"}]
    assert names(snap.ingresses) == ["Ingress/default/shop"]


def test_lists_folders_json_and_stdin(tmp_path: Path) -> None:
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    (sub / "nodes.yml").write_text("kind: NodeList\napiVersion: v1\nitems:\n- metadata: {name: n1}\n"
                                   "- metadata: {name: n2}\n")
    (tmp_path / "a" / "pods.json").write_text(json.dumps({"kind": "List", "items": [
        {"kind": "Pod", "metadata": {"name": "p", "namespace": "x"}},
        {"kind": "EndpointSlice", "metadata": {"name": "e", "namespace": "x"}}]}))
    (tmp_path / "a" / "notes.txt").write_text("not a manifest: {")
    snap = load([str(tmp_path), "-"], stdin=io.StringIO(SERVICE))
    assert names(snap.nodes) == ["Node//n1", "Node//n2"]
    assert names(snap.pods) == ["Pod/x/p"]
    assert names(snap.endpointslices) == ["EndpointSlice/x/e"]
    assert names(snap.services) == ["Service/shop/web"]


def test_namespace_scopes_namespaced_kinds_only(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(SERVICE + "---\nkind: Service\nmetadata: {name: other, namespace: x}\n"
                                     "---\nkind: Node\nmetadata: {name: n1}\n")
    snap = load([str(tmp_path)], namespace="shop")
    assert names(snap.services) == ["Service/shop/web"]
    assert names(snap.nodes) == ["Node//n1"]


@pytest.mark.parametrize(("content", "filename", "expected"), [
    (SERVICE + "---\nkind: Service\nmetadata: {name: [unclosed\n", "bad.yaml", r"bad\.yaml: document 2, line 1[45]"),
    ("- just\n- a list\n", "list.yaml", r"list\.yaml: document 1 \(line 1\): not a Kubernetes object"),
    ('{"kind": "Service",\n "metadata": }', "bad.json", r"bad\.json: line 2: invalid JSON"),
    ("kind: Service\n---\nmetadata: {created: !!timestamp 2020-13-45}\n", "date.yaml",
     r"date\.yaml: document 2: invalid YAML value: month must be in 1\.\.12"),
])
def test_a_bad_file_is_one_line_naming_file_document_and_line(tmp_path: Path, content: str, filename: str,
                                                               expected: str) -> None:
    (tmp_path / filename).write_text(content)
    with pytest.raises(ManifestError, match=expected) as info:
        load([str(tmp_path / filename)])
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("--from-manifests: ")


def test_timestamps_stay_strings_as_from_the_api(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SERVICE.replace("  name: web\n", "  name: web\n  creationTimestamp: "
                                                                      "2026-01-02T03:04:05Z\n"))
    [svc] = load([str(tmp_path / "s.yaml")]).services
    assert svc["metadata"]["creationTimestamp"] == "2026-01-02T03:04:05Z"


def test_one_file_parses_on_its_own_in_file_order(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("kind: Node\nmetadata: {name: n1}\n---\n" + SERVICE
                                     + "---\nkind: Ingress\nmetadata: {name: shop}\n---\nkind: ConfigMap\n"
                                     "metadata: {name: ignored}\n")
    assert names(parse_file(str(tmp_path / "m.yaml"))) == ["Node//n1", "Service/shop/web", "Ingress/default/shop"]
    assert names(parse_file(str(tmp_path / "m.yaml"), namespace="shop")) == ["Node//n1", "Service/shop/web"]
    assert names(parse_file("-", stdin=io.StringIO(SERVICE))) == ["Service/shop/web"]


def test_parse_file_refuses_the_whole_file_naming_file_document_and_line(tmp_path: Path) -> None:
    (tmp_path / "half.yaml").write_text(SERVICE + "---\nkind: Service\nmetadata:\n  name: api\n namespace: x\n")
    with pytest.raises(ManifestError, match=r"^--from-manifests: .*half\.yaml: document 2, line 16: invalid YAML"):
        parse_file(str(tmp_path / "half.yaml"))
    with pytest.raises(ManifestError, match=r"nope\.yaml: cannot read"):
        parse_file(str(tmp_path / "nope.yaml"))


def test_hidden_files_and_folders_are_skipped_when_a_folder_is_expanded(tmp_path: Path) -> None:
    """A ConfigMap volume: every key is a symlink into ``..data``, itself a symlink to a ``..<timestamp>`` folder."""
    mount = tmp_path / "config"
    stamp = mount / "..2026_01_02_03_04_05.000000001"
    stamp.mkdir(parents=True)
    (stamp / "web.yaml").write_text(SERVICE)
    (mount / "..data").symlink_to(stamp.name)
    (mount / "web.yaml").symlink_to("..data/web.yaml")
    (mount / ".git").mkdir()
    (mount / ".git" / "old.yaml").write_text(SERVICE)
    (mount / ".web.yaml.swp").write_text(SERVICE)
    (mount / "team").mkdir()
    (mount / "team" / ".draft.yml").write_text(SERVICE)
    assert manifest_files(str(mount)) == [str(mount / "web.yaml")]
    assert names(load([str(mount)]).services) == ["Service/shop/web"]  # once, not three times
    assert names(load([str(mount / ".web.yaml.swp")]).services) == ["Service/shop/web"]  # named on its own: read


def test_a_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"nope\.yaml: no such file"):
        load([str(tmp_path / "nope.yaml")])


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                               st.sampled_from(["kind", "items", "metadata", "namespace", "name", "x"]), inner,
                               max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=60), json_values.map(lambda v: yaml.safe_dump(v))))
def test_any_input_is_loaded_or_refused_with_a_manifest_error(text: str) -> None:
    try:
        snap = load(["-"], stdin=io.StringIO(text))
    except ManifestError as exc:
        assert "\n" not in str(exc)
        return
    for objs in (snap.services, snap.ingresses, snap.nodes, snap.pods, snap.endpointslices):
        assert all(isinstance(o, dict) for o in objs)
