"""The cluster through the real ``kubernetes`` client: paged lists of the five kinds the sources read.

Configuration: ``--kubeconfig PATH``; else the in-cluster service account; else ``~/.kube/config`` (or
``$KUBECONFIG``). A config that can't be loaded raises :class:`KubeConfigError` (exit 2, naming the flag).

Lists are paged (``limit=500`` + ``continue``) and read raw (``_preload_content=False`` + ``json.loads``), so
objects are plain dicts in the API's JSON shape - the same shape as manifest files - and no time is spent
building the client's model classes. Each item gets its ``kind``/``apiVersion`` back (lists leave them out).
Namespaced kinds are listed in ``--namespace`` only when it is set; the label selector is passed to the server
for Services and Ingresses (the sources apply it too). An unreachable API server (connection errors, 5xx, 429)
is retried with backoff for the retry budget (:mod:`syncer.retrying`), then :class:`KubeApiError` (exit 1);
other API errors (401, 403, ...) raise it at once.

:class:`KubeApi` keeps the clients and the list revisions, so a continuous mode can start watches from
``resource_versions`` later.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import structlog
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException
from tenacity import Retrying

from syncer.model import KINDS, ClusterSnapshot
from syncer.retrying import budget, retry_policy

PAGE = 500
log = structlog.get_logger()


class KubeConfigError(ValueError):
    """No usable Kubernetes client configuration (exit 2)."""


class KubeApiError(RuntimeError):
    """The API server could not be read (exit 1)."""


def kinds_for_sources(sources: Iterable[str]) -> list[str]:
    """The kinds the given ``--source`` values read (Services need Nodes, Pods and EndpointSlices too)."""
    out: list[str] = []
    if "service" in sources:
        out += ["Service", "Node", "Pod", "EndpointSlice"]
    if "ingress" in sources:
        out.append("Ingress")
    return out


def load_configuration(kubeconfig: str | None) -> k8s.Configuration:
    cfg = k8s.Configuration()
    try:
        if kubeconfig:
            k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
            return cfg
        try:
            k8s_config.load_incluster_config(client_configuration=cfg)
            return cfg
        except ConfigException:
            pass
        k8s_config.load_kube_config(client_configuration=cfg)
        return cfg
    except (ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
        where = f"--kubeconfig {kubeconfig}" if kubeconfig else "in-cluster config and ~/.kube/config"
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise KubeConfigError(f"{where}: cannot load a Kubernetes client configuration: {message}") from None


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, k8s.ApiException):
        return exc.status in (0, 429) or (exc.status or 0) >= 500
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, k8s.ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    return " ".join(f"{type(exc).__name__}: {exc}".split())


class KubeApi:
    """Lists the kinds the sources need; ``list_snapshot()`` is one consistent-enough read of all of them."""

    def __init__(self, kubeconfig: str | None = None, namespace: str | None = None, label_selector: str = "",
                 request_timeout: float = 30.0) -> None:
        cfg = load_configuration(kubeconfig)
        cfg.retries = 1  # our own bounded backoff does the retrying
        self.api_client = k8s.ApiClient(cfg)
        self.server = cfg.host
        self.namespace = namespace
        self.label_selector = label_selector
        self.timeout = request_timeout
        self.core = k8s.CoreV1Api(self.api_client)
        self.networking = k8s.NetworkingV1Api(self.api_client)
        self.discovery = k8s.DiscoveryV1Api(self.api_client)
        self.resource_versions: dict[str, str] = {}

    def close(self) -> None:
        self.api_client.close()

    def _list_call(self, kind: str) -> Callable[..., Any]:
        ns = self.namespace
        calls: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
            "Service": (self.core.list_service_for_all_namespaces, self.core.list_namespaced_service),
            "Ingress": (self.networking.list_ingress_for_all_namespaces, self.networking.list_namespaced_ingress),
            "Pod": (self.core.list_pod_for_all_namespaces, self.core.list_namespaced_pod),
            "EndpointSlice": (self.discovery.list_endpoint_slice_for_all_namespaces,
                              self.discovery.list_namespaced_endpoint_slice),
        }
        if kind == "Node":
            return self.core.list_node
        all_ns, in_ns = calls[kind]
        if ns:
            return lambda **kw: in_ns(ns, **kw)
        return all_ns

    def list_kind(self, kind: str) -> list[dict[str, Any]]:
        """Every object of ``kind`` (paged), as plain dicts with ``kind`` and ``apiVersion`` set."""
        spec = KINDS[kind]
        call = self._list_call(kind)
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": PAGE, "_preload_content": False, "_request_timeout": self.timeout}
            if token:
                kwargs["_continue"] = token
            if spec.selectable and self.label_selector:
                kwargs["label_selector"] = self.label_selector
            page = self._get_page(kind, call, kwargs)
            for item in page.get("items") or []:
                item.setdefault("kind", spec.kind)
                item.setdefault("apiVersion", spec.api_version)
                items.append(item)
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if not token:
                self.resource_versions[kind] = str(meta.get("resourceVersion", ""))
                return items

    def _get_page(self, kind: str, call: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        def fetch() -> dict[str, Any]:
            response = call(**kwargs)
            try:
                data = json.loads(response.data)
            finally:
                response.release_conn()
            if not isinstance(data, dict):
                raise KubeApiError(f"{self.server}: list {kind}: the answer is not a JSON object")
            return data

        seconds = budget()
        try:
            for attempt in Retrying(**retry_policy(f"list {kind} from {self.server}", seconds, _transient, _describe)):
                with attempt:
                    return fetch()
        except k8s.ApiException as exc:
            if _transient(exc):
                raise KubeApiError(f"Kubernetes API {self.server}: list {kind}: still failing after {seconds:g} s "
                                   f"of retries ({_describe(exc)})") from None
            raise KubeApiError(f"Kubernetes API {self.server}: list {kind}: {_describe(exc)}") from None
        except Exception as exc:
            if _transient(exc):
                raise KubeApiError(f"Kubernetes API {self.server} unreachable after {seconds:g} s of retries "
                                   f"(list {kind}: {_describe(exc)})") from None
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def list_snapshot(self, kinds: Iterable[str]) -> ClusterSnapshot:
        """One list of each kind into a :class:`ClusterSnapshot`."""
        snapshot = ClusterSnapshot()
        for kind in kinds:
            items = self.list_kind(kind)
            getattr(snapshot, KINDS[kind].field).extend(items)
            log.debug("listed", kind=kind, count=len(items), resource_version=self.resource_versions.get(kind))
        return snapshot
