"""A real TLS listener in front of the embedded broker: certificates made here, socat as the
TLS terminator, Tansu advertising the terminator's address so that every connection of every
client goes through TLS.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.broker import broker_command, free_port
from tests.conftest import end_popen

TLS_HOST = "localhost"  # the only name the server certificate holds


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path  # a CA that signed nothing the broker shows
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return key, cert


def _leaf(directory: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    key, csr, cert = (directory / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
    ext_file = directory / f"{name}.ext"
    ext_file.write_text(
        f"{extensions}\nbasicConstraints=CA:FALSE\n"
        "authorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n"
    )
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", csr, "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0], "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext_file,
        cwd=directory,
    )  # fmt: skip
    return cert, key


def make_pki(directory: Path) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    ca = _ca(directory, "relay-test-ca")
    _, other_ca = _ca(directory, "some-other-ca")
    server = _leaf(
        directory, "broker", ca, f"subjectAltName=DNS:{TLS_HOST}\nextendedKeyUsage=serverAuth"
    )
    client = _leaf(directory, "relay-client", ca, "extendedKeyUsage=clientAuth")
    return Pki(ca[1], other_ca, server[0], server[1], client[0], client[1])


@dataclass(frozen=True)
class TlsKafka:
    bootstrap: str  # TLS_HOST:port: the name the certificate holds
    by_address: str  # 127.0.0.1:port: the same listener by a name the certificate lacks
    plaintext: str  # the broker itself, behind the terminator
    pki: Pki


def _wait_for_tls(
    port: int, ca: Path, deadline: float, client: tuple[Path, Path] | None = None
) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(*client)
    while True:
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=1) as raw,
                context.wrap_socket(raw, server_hostname=TLS_HOST),
            ):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def _tls_broker(pki: Pki, *, client_certificates: bool) -> Iterator[TlsKafka]:
    broker_port, tls_port = free_port(), free_port()
    broker = subprocess.Popen(
        broker_command("127.0.0.1", broker_port, advertised=f"{TLS_HOST}:{tls_port}"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    verify = f"verify=1,cafile={pki.ca}" if client_certificates else "verify=0"
    terminator = subprocess.Popen(
        [
            "socat",
            f"OPENSSL-LISTEN:{tls_port},bind=127.0.0.1,reuseaddr,fork,"
            f"cert={pki.server_cert},key={pki.server_key},{verify}",
            f"TCP:127.0.0.1:{broker_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = (pki.client_cert, pki.client_key) if client_certificates else None
        _wait_for_tls(tls_port, pki.ca, time.monotonic() + 30, client)
        yield TlsKafka(
            f"{TLS_HOST}:{tls_port}", f"127.0.0.1:{tls_port}", f"127.0.0.1:{broker_port}", pki
        )
    finally:
        for process in (terminator, broker):
            end_popen(process)


@pytest.fixture(scope="module")
def tls_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsKafka]:
    """Tansu on a plaintext port, socat terminating TLS on another, advertised by name."""
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (.ci/run installs it)")
    with _tls_broker(make_pki(tmp_path_factory.mktemp("pki")), client_certificates=False) as tls:
        yield tls


@pytest.fixture(scope="module")
def mtls_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsKafka]:
    """The same, the terminator asking every client for a certificate of the test's CA."""
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (.ci/run installs it)")
    with _tls_broker(make_pki(tmp_path_factory.mktemp("pki")), client_certificates=True) as tls:
        yield tls
