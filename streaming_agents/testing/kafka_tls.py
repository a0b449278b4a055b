"""TLS material for the secured test broker, made with the JDK's ``keytool``.

A private CA (``ca.pem``, what clients trust) signs the broker's certificate
(``broker.p12``, PKCS12, subject alternative names ``IP:127.0.0.1`` and
``DNS:localhost`` so clients verify the host name).  The store password is
random, kept in ``store.secret`` (mode 0600) and handed to ``keytool``
through its environment, never on a command line.  Made once per folder.

Mutual TLS: the CA's keystore (``ca.p12``, 0600) is kept so that
:func:`client_keystore` can issue client certificates (``CN=<user>``, the
broker maps that to ``User:<user>``) in PKCS12 keystores of their own, each
with a random password in a 0600 secret file (a reference, as everywhere).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from streaming_agents.connectors.security import SecretRef, write_secret_file
from streaming_agents.errors import InfrastructureError
from streaming_agents.runtime.environment import java_home

__all__ = ["BrokerTls", "broker_tls", "client_keystore"]

_STOREPASS_ENV = "SA_TLS_STOREPASS"
_VALIDITY_DAYS = "3650"


@dataclass(frozen=True)
class BrokerTls:
    """Paths of the CA certificate, the broker keystore and its password."""

    ca_pem: Path
    keystore: Path
    store_password: str


def _keytool(folder: Path, password: str, *args: str) -> None:
    keytool = Path(java_home(), "bin", "keytool")
    env = {**os.environ, _STOREPASS_ENV: password}
    quick = ("-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC")  # a short-lived JVM
    done = subprocess.run(
        [str(keytool), *quick, *args, "-storepass:env", _STOREPASS_ENV],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise InfrastructureError(f"keytool {args[0]} failed: {done.stdout}{done.stderr}")


def broker_tls(folder: Path) -> BrokerTls:
    """The CA and broker keystore in ``folder``, generated if missing."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = folder / "store.secret"
    ca_pem, keystore = folder / "ca.pem", folder / "broker.p12"
    if secret.exists() and ca_pem.exists() and keystore.exists() and (folder / "ca.p12").exists():
        return BrokerTls(ca_pem, keystore, secret.read_text().strip())
    for stale in ("ca.p12", "ca.pem", "broker.p12", "broker.csr", "broker.pem"):
        (folder / stale).unlink(missing_ok=True)
    password = secrets.token_hex(16)
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password)
    key = ("-keyalg", "EC", "-groupname", "secp256r1", "-validity", _VALIDITY_DAYS)
    store = ("-storetype", "PKCS12")
    _keytool(folder, password, "-genkeypair", "-keystore", "ca.p12", *store, "-alias", "ca",
             "-dname", "CN=streaming-agents test CA", *key, "-ext", "bc:c")  # fmt: skip
    _keytool(folder, password, "-exportcert", "-keystore", "ca.p12", "-alias", "ca",
             "-rfc", "-file", "ca.pem")  # fmt: skip
    _keytool(folder, password, "-genkeypair", "-keystore", "broker.p12", *store,
             "-alias", "broker", "-dname", "CN=localhost", *key)  # fmt: skip
    _keytool(folder, password, "-certreq", "-keystore", "broker.p12", "-alias", "broker",
             "-file", "broker.csr")  # fmt: skip
    _keytool(folder, password, "-gencert", "-keystore", "ca.p12", "-alias", "ca",
             "-infile", "broker.csr", "-outfile", "broker.pem", "-rfc",
             "-validity", _VALIDITY_DAYS, "-ext", "SAN=IP:127.0.0.1,DNS:localhost",
             "-ext", "EKU=serverAuth,clientAuth")  # fmt: skip
    _keytool(folder, password, "-importcert", "-keystore", "broker.p12", "-alias", "ca",
             "-file", "ca.pem", "-noprompt")  # fmt: skip
    _keytool(folder, password, "-importcert", "-keystore", "broker.p12", "-alias", "broker",
             "-file", "broker.pem")  # fmt: skip
    (folder / "broker.csr").unlink()
    for private in (keystore, folder / "ca.p12"):  # ca.p12 signs client certificates
        private.chmod(0o600)
    return BrokerTls(ca_pem, keystore, password)


def client_keystore(folder: Path, user: str) -> tuple[Path, SecretRef]:
    """A client keystore for ``user`` (``CN=<user>``, signed by the CA of ``folder``).

    Returns the PKCS12 file and a reference to its password (a 0600 secret
    file beside it).  Made once per user.
    """
    tls = broker_tls(folder)
    if not user.replace("-", "").replace("_", "").isalnum():
        raise InfrastructureError(f"client certificate name {user!r}: letters, digits, - and _")
    store, secret = folder / f"client-{user}.p12", folder / f"client-{user}.secret"
    ref = SecretRef("file", str(secret.resolve()), "password")
    if store.exists() and secret.exists():
        return store, ref
    password = secrets.token_hex(16)
    write_secret_file(secret, password)
    key = ("-keyalg", "EC", "-groupname", "secp256r1", "-validity", _VALIDITY_DAYS)
    name, csr, pem = store.name, f"client-{user}.csr", f"client-{user}.pem"
    _keytool(folder, password, "-genkeypair", "-keystore", name, "-storetype", "PKCS12",
             "-alias", "client", "-dname", f"CN={user}", *key)  # fmt: skip
    _keytool(folder, password, "-certreq", "-keystore", name, "-alias", "client",
             "-file", csr)  # fmt: skip
    _keytool(folder, tls.store_password, "-gencert", "-keystore", "ca.p12", "-alias", "ca",
             "-infile", csr, "-outfile", pem, "-rfc", "-validity", _VALIDITY_DAYS,
             "-ext", "EKU=clientAuth")  # fmt: skip
    _keytool(folder, password, "-importcert", "-keystore", name, "-alias", "ca",
             "-file", "ca.pem", "-noprompt")  # fmt: skip
    _keytool(folder, password, "-importcert", "-keystore", name, "-alias", "client",
             "-file", pem)  # fmt: skip
    (folder / csr).unlink()
    store.chmod(0o600)
    return store, ref
