"""Throwaway TLS material (openssl CLI) and a real etcd serving clients over TLS, for the TLS tests."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devtools.localetcd import LocalEtcd

SERVER_SANS = "IP:127.0.0.1,DNS:localhost,DNS:etcd.test"


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing the server presents


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {done.stderr}")


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key.name, "-out", cert.name, "-days", "1", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=directory)
    return cert, key


def _leaf(directory: Path, name: str, ca: tuple[Path, Path], usage: str, sans: str | None) -> tuple[Path, Path]:
    cert, key, csr, ext = (directory / f"{name}.pem", directory / f"{name}-key.pem", directory / f"{name}.csr",
                           directory / f"{name}.ext")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key.name, "-out", csr.name, "-subj", f"/CN={name}", cwd=directory)
    lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature", f"extendedKeyUsage={usage}"]
    if sans:
        lines.append(f"subjectAltName={sans}")
    ext.write_text("\n".join(lines) + "\n")
    _openssl("x509", "-req", "-in", csr.name, "-CA", ca[0].name, "-CAkey", ca[1].name, "-CAcreateserial",
             "-out", cert.name, "-days", "1", "-extfile", ext.name, cwd=directory)
    return cert, key


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1/localhost/etcd.test and a client certificate it signed."""
    if shutil.which("openssl") is None:
        raise FileNotFoundError("the openssl command-line tool is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "test-ca")
    other_ca, _ = _ca(directory, "other-ca")
    server = _leaf(directory, "server", ca, "serverAuth", SERVER_SANS)
    client = _leaf(directory, "client", ca, "clientAuth", None)
    return TlsFiles(ca=ca[0], server_cert=server[0], server_key=server[1], client_cert=client[0],
                    client_key=client[1], other_ca=other_ca)


def client_certificate(tls: TlsFiles, common_name: str) -> tuple[Path, Path]:
    """Another client certificate from the test CA, for ``common_name`` (etcd's user name under cert auth)."""
    directory = tls.ca.parent
    return _leaf(directory, common_name, (tls.ca, directory / "test-ca-key.pem"), "clientAuth", None)


class TlsEtcd(LocalEtcd):
    """A real etcd whose client URL is ``https://127.0.0.1:PORT`` and that requires a client certificate."""

    scheme = "https"

    def __init__(self, tls: TlsFiles, client_cert_auth: bool = True) -> None:
        super().__init__()
        self.tls = tls
        self.client_cert_auth = client_cert_auth

    def client_env(self, client_cert: bool = True) -> dict[str, str]:
        """The ExternalDNS-style variables a client of this etcd sets."""
        env = {"ETCD_URLS": self.endpoint, "ETCD_CA_FILE": str(self.tls.ca)}
        if client_cert:
            env.update(ETCD_CERT_FILE=str(self.tls.client_cert), ETCD_KEY_FILE=str(self.tls.client_key))
        return env

    def extra_args(self) -> list[str]:
        args = ["--cert-file", str(self.tls.server_cert), "--key-file", str(self.tls.server_key),
                "--trusted-ca-file", str(self.tls.ca)]
        return [*args, "--client-cert-auth"] if self.client_cert_auth else args

    def health_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        context.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        return context
