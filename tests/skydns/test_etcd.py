"""The etcd fixture and the shared client against a real etcd."""

from __future__ import annotations

import pytest

from skydns.etcd import EtcdClient, EtcdConfigError, EtcdSettings, read_prefix
from skydns.names import name_to_key
from skydns.record import Record, decode, encode


async def test_records_round_trip_through_real_etcd(etcd: EtcdClient) -> None:
    key = name_to_key("www.example.org") + "/0a1b2c3d"
    await etcd.put(key.encode(), encode(Record(host="10.0.0.1", targetstrip=1)))
    got = await etcd.get(key.encode())
    assert got is not None
    assert decode(got.value, key) == Record(host="10.0.0.1", targetstrip=1)


async def test_each_test_starts_with_an_empty_key_space(etcd: EtcdClient) -> None:
    _, kvs = await read_prefix(etcd, b"/")
    assert kvs == []
    await etcd.put(b"/skydns/leftover", b"{}")


async def test_read_prefix_pages_at_one_revision(etcd: EtcdClient) -> None:
    for i in range(25):
        await etcd.put(f"/skydns/test/n{i:03d}".encode(), b"{}")
    await etcd.put(b"/skydnsx/outside", b"{}")
    rev, kvs = await read_prefix(etcd, b"/skydns/", page=7)
    await etcd.put(b"/skydns/test/later", b"{}")
    assert [kv.key for kv in kvs] == [f"/skydns/test/n{i:03d}".encode() for i in range(25)]
    again, old = await read_prefix(etcd, b"/skydns/", revision=rev, page=4)
    assert again == rev
    assert len(old) == 25


def test_settings_follow_externaldns_variables(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    env = {"ETCD_URLS": "https://10.0.0.1:2379,https://10.0.0.2:2379", "ETCD_CA_FILE": str(ca),
           "ETCD_TLS_INSECURE": "yes", "ETCD_USERNAME": "u", "ETCD_PASSWORD": "p"}
    s = EtcdSettings.from_env(env=env)
    assert s.secure and s.insecure and s.ca_file == str(ca) and s.username == "u"
    assert s.grpc_target() == "ipv4:10.0.0.1:2379,10.0.0.2:2379"
    assert EtcdSettings.from_env("http://127.0.0.1:1234", env=env).endpoints == ("http://127.0.0.1:1234",)
    assert EtcdSettings.from_env(env={}).endpoints == ("http://localhost:2379",)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ETCD_URLS": "localhost:2379"}, "must start with either http:// or https://"),
        ({"ETCD_CERT_FILE": "/c"}, "ETCD_CERT_FILE and ETCD_KEY_FILE must be set together"),
        ({"ETCD_USERNAME": "u"}, "ETCD_USERNAME and ETCD_PASSWORD must be set together"),
        ({"ETCD_CA_FILE": "/nonexistent/ca.pem"}, "ETCD_CA_FILE: no such file"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(EtcdConfigError, match=message):
        EtcdSettings.from_env(env=env)
