"""One client-security setting for every Kafka client of the project.

A :class:`KafkaSecurity` is written like Kafka's own ``--command-config``
properties file (or given as a mapping)::

    security.protocol=SASL_SSL
    sasl.mechanism=SCRAM-SHA-512
    sasl.username=claims-triage
    sasl.password=${file:/etc/streaming-agents/claims-triage.secret:password}
    ssl.ca.location=/etc/streaming-agents/ca.pem

Mutual TLS instead of SASL: ``security.protocol=SSL`` with a client keystore
(``ssl.keystore.location``, a PKCS12 file holding the client's key and
certificate chain, and ``ssl.keystore.password``); the broker maps the
certificate's subject to the principal (``ssl.principal.mapping.rules``).

Secrets (``sasl.password``, ``ssl.truststore.password``,
``ssl.keystore.password``, ``ssl.key.password``) are *references*, never
values: ``${env:NAME}`` (an environment variable) or ``${file:/path:key}`` (a
key of a properties file, Kafka's FileConfigProvider syntax).  A literal
secret is a :class:`ConfigError`.  The setting maps to:

* :func:`client_properties` -- Java client properties for Flink's
  ``KafkaSource``/``KafkaSink`` and the Table API connector.  References stay
  references: the properties declare Kafka's ``EnvVarConfigProvider`` /
  ``FileConfigProvider`` (``config.providers``), so each Kafka client resolves
  the secret when it is created, on the TaskManager or JobManager that creates
  it.  What PyFlink serialises into the job graph holds ``${env:...}``, never
  the password.  The worker needs the variable in its environment or the file
  on its disk.
* :func:`librdkafka_config` -- confluent-kafka configuration (admin helpers,
  readers, replay, compare), with the secrets resolved in the calling process.
* :func:`table_options` -- the Java properties as ``properties.*`` options of a
  Flink SQL ``CREATE TABLE ... WITH (...)``, and :func:`sql_string` to quote
  any value put into SQL text.

Java reads the password inside ``sasl.jaas.config``, a quoted JAAS string: a
password holding ``"`` or ``\\`` must be escaped there, which an environment
variable cannot be.  :func:`write_secret_file` therefore writes two keys, the
password (``password``, for librdkafka) and its JAAS-escaped form
(``password.jaas``, which the Java side references); an ``${env:...}``
password with ``"`` or ``\\`` is refused when the building process can see it.
"""

from __future__ import annotations

import functools
import os
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from streaming_agents.errors import ConfigError, StreamingAgentsError

__all__ = [
    "KAFKA_SECURITY_ENV",
    "KafkaSecurity",
    "SecretRef",
    "client_properties",
    "jaas_quote",
    "librdkafka_config",
    "load_security",
    "merge_properties",
    "read_properties",
    "security_from_env",
    "sql_string",
    "table_options",
    "write_secret_file",
    "write_security_file",
]

KAFKA_SECURITY_ENV = "STREAMING_AGENTS_KAFKA_SECURITY"
"""Path of a client-security properties file used when none is given explicitly."""

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
JAAS_SUFFIX = ".jaas"
"""Key suffix, in a secret file, of the JAAS-escaped form of a secret."""

_SHADED = "org.apache.flink.kafka.shaded."
_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
_PROVIDERS = {
    "env": "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
    "file": "org.apache.kafka.common.config.provider.FileConfigProvider",
}
_REF = re.compile(r"^\$\{(env|file):([^}:]+)(?::([^}]+))?\}$")
_SECRET_KEYS = (
    "sasl.password",
    "ssl.truststore.password",
    "ssl.keystore.password",
    "ssl.key.password",
)
_KNOWN_KEYS = (
    "security.protocol",
    "sasl.mechanism",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.truststore.location",
    "ssl.truststore.type",
    "ssl.truststore.password",
    "ssl.endpoint.identification.algorithm",
    "ssl.keystore.location",
    "ssl.keystore.type",
    "ssl.keystore.password",
    "ssl.key.password",
)


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: ``${env:NAME}`` or ``${file:/path:key}``; never the secret."""

    provider: str
    location: str
    key: str | None = None

    def __post_init__(self) -> None:
        if self.provider not in _PROVIDERS:
            raise ConfigError(f"secret provider {self.provider!r} not one of env, file")
        if any(c in f"{self.location}{self.key or ''}" for c in ":}\n") or not self.location:
            raise ConfigError(f"secret location {self.location!r}: no ':', '}}' or line breaks")
        if self.provider == "env" and self.key is not None:
            raise ConfigError("${env:NAME} takes no key")
        if self.provider == "file" and not self.key:
            raise ConfigError("${file:/path:key} needs a key (the file is a properties file)")

    @classmethod
    def parse(cls, text: str, what: str = "secret") -> SecretRef:
        match = _REF.match(text.strip())
        if match is None:
            raise ConfigError(
                f"{what} must be a reference, ${{env:NAME}} or ${{file:/path:key}}, "
                "never the secret itself"
            )
        provider, location, key = match.groups()
        try:
            return cls(provider, location, key)
        except ConfigError as exc:
            raise ConfigError(f"{what}: {exc}") from None

    def text(self, key_suffix: str = "") -> str:
        """The reference as Kafka's config providers read it."""
        if self.provider == "env":
            return f"${{env:{self.location}}}"
        return f"${{file:{self.location}:{self.key}{key_suffix}}}"

    def resolve(self, key_suffix: str = "") -> str:
        """The secret itself (for clients created in this process only)."""
        if self.provider == "env":
            value = os.environ.get(self.location)
            if value is None:
                raise ConfigError(f"environment variable {self.location} is not set")
            return value
        values = read_properties(Path(self.location))
        key = f"{self.key}{key_suffix}"
        if key not in values:
            raise ConfigError(f"secret file {self.location} has no key {key!r}")
        return values[key]

    def visible(self) -> bool:
        """Whether this process can read the secret (the building process may not)."""
        if self.provider == "env":
            return self.location in os.environ
        return os.access(self.location, os.R_OK)


@dataclass(frozen=True)
class KafkaSecurity:
    """A client-security setting (see the module doc); ``KafkaSecurity()`` is PLAINTEXT."""

    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: SecretRef | None = None
    ca_location: str | None = None
    truststore_location: str | None = None
    truststore_type: str | None = None
    truststore_password: SecretRef | None = None
    endpoint_identification: str | None = None
    keystore_location: str | None = None
    """A client keystore (PKCS12: key and certificate chain) for mutual TLS."""
    keystore_type: str | None = None
    keystore_password: SecretRef | None = None
    key_password: SecretRef | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"security.protocol {self.protocol!r} not one of {PROTOCOLS}")
        sasl = self.protocol.startswith("SASL_")
        if sasl and (self.mechanism not in MECHANISMS or not self.username or not self.password):
            raise ConfigError(
                f"{self.protocol} needs sasl.mechanism (one of {MECHANISMS}), "
                "sasl.username and sasl.password"
            )
        if not sasl and (self.mechanism or self.username or self.password):
            raise ConfigError(f"sasl.* settings given but security.protocol is {self.protocol}")
        if self.endpoint_identification not in (None, "https", "none", ""):
            raise ConfigError("ssl.endpoint.identification.algorithm must be https or none")
        if self.keystore_location and not self.uses_tls:
            raise ConfigError(f"ssl.keystore.* given but security.protocol is {self.protocol}")
        if bool(self.keystore_location) != (self.keystore_password is not None):
            raise ConfigError("ssl.keystore.location and ssl.keystore.password go together")
        if self.keystore_type not in (None, "PKCS12"):
            raise ConfigError("ssl.keystore.type: only PKCS12 (both client kinds read it)")

    @classmethod
    def from_properties(cls, props: Mapping[str, str]) -> KafkaSecurity:
        """From ``--command-config``-style keys (see the module doc)."""
        unknown = sorted(set(props) - set(_KNOWN_KEYS))
        if unknown:
            hint = " (give sasl.username and sasl.password)" if "sasl.jaas.config" in props else ""
            raise ConfigError(
                f"unknown Kafka security setting(s) {', '.join(unknown)}{hint}; "
                f"known: {', '.join(_KNOWN_KEYS)}"
            )
        refs = {k: SecretRef.parse(props[k], k) for k in _SECRET_KEYS if props.get(k)}
        return cls(
            protocol=props.get("security.protocol", "PLAINTEXT").upper(),
            mechanism=props.get("sasl.mechanism") or None,
            username=props.get("sasl.username") or None,
            password=refs.get("sasl.password"),
            ca_location=props.get("ssl.ca.location") or None,
            truststore_location=props.get("ssl.truststore.location") or None,
            truststore_type=props.get("ssl.truststore.type") or None,
            truststore_password=refs.get("ssl.truststore.password"),
            endpoint_identification=props.get("ssl.endpoint.identification.algorithm"),
            keystore_location=props.get("ssl.keystore.location") or None,
            keystore_type=props.get("ssl.keystore.type") or None,
            keystore_password=refs.get("ssl.keystore.password"),
            key_password=refs.get("ssl.key.password"),
        )

    def to_properties(self) -> dict[str, str]:
        """The ``--command-config`` form (references, not secrets: safe to write or log)."""
        pairs = {
            "security.protocol": self.protocol,
            "sasl.mechanism": self.mechanism,
            "sasl.username": self.username,
            "sasl.password": self.password.text() if self.password else None,
            "ssl.ca.location": self.ca_location,
            "ssl.truststore.location": self.truststore_location,
            "ssl.truststore.type": self.truststore_type,
            "ssl.truststore.password": (
                self.truststore_password.text() if self.truststore_password else None
            ),
            "ssl.endpoint.identification.algorithm": self.endpoint_identification,
            "ssl.keystore.location": self.keystore_location,
            "ssl.keystore.type": self.keystore_type,
            "ssl.keystore.password": (
                self.keystore_password.text() if self.keystore_password else None
            ),
            "ssl.key.password": self.key_password.text() if self.key_password else None,
        }
        return {k: v for k, v in pairs.items() if v is not None}

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")


def read_properties(path: Path) -> dict[str, str]:
    """A Java properties file's ``key=value`` pairs (``#``/``!`` comments, ``\\`` escapes)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.lstrip()
        if not line or line[0] in "#!":
            continue
        key, value = _split_property(line)
        out[_unescape(key)] = _unescape(value.lstrip())
    return out


def _split_property(line: str) -> tuple[str, str]:
    i = 0
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        if line[i] in "=:":
            return line[:i].rstrip(), line[i + 1 :]
        if line[i] in " \t":
            rest = line[i:].lstrip()
            return line[:i], rest[1:] if rest[:1] in ("=", ":") else rest
        i += 1
    return line, ""


def _unescape(text: str) -> str:
    out, i = [], 0
    simple = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u" and i + 6 <= len(text):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(simple.get(nxt, nxt))
            i += 2
            continue
        out.append(char)
        i += 1
    # \uXXXX pairs are UTF-16 surrogates: join them into one character.
    return "".join(out).encode("utf-16-le", "surrogatepass").decode("utf-16-le")


def _escape_property(text: str, key: bool = False) -> str:
    out = []
    for pos, char in enumerate(text):
        if char in "\\=:#!" or (char == " " and (key or pos == 0)):
            out.append("\\" + char)
        elif char in "\t\n\r\f":
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f"}[char])
        elif not 0x20 <= ord(char) < 0x7F:
            out.append("".join(f"\\u{unit:04x}" for unit in _utf16(char)))
        else:
            out.append(char)
    return "".join(out)


def _utf16(char: str) -> Iterable[int]:
    data = char.encode("utf-16-be")
    return (int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))


def load_security(path: Path | str) -> KafkaSecurity:
    """A :class:`KafkaSecurity` from a ``--command-config``-style properties file."""
    return KafkaSecurity.from_properties(read_properties(Path(path)))


def security_from_env() -> KafkaSecurity | None:
    """The setting named by ``$STREAMING_AGENTS_KAFKA_SECURITY``, or None (PLAINTEXT)."""
    path = os.environ.get(KAFKA_SECURITY_ENV)
    return load_security(path) if path else None


def write_security_file(path: Path | str, security: KafkaSecurity) -> Path:
    """Write ``security`` as a ``--command-config``-style file (references only)."""
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = (
        f"{_escape_property(k, key=True)}={_escape_property(v)}\n"
        for k, v in security.to_properties().items()
    )
    target.write_text("".join(lines), encoding="utf-8")
    return target


def write_secret_file(path: Path | str, password: str, key: str = "password") -> SecretRef:
    """Write ``password`` (mode 0600) for both client kinds; returns its reference.

    The file holds ``key`` (the password) and ``key.jaas`` (escaped for a quoted
    JAAS value, what the Java clients read through ``sasl.jaas.config``).
    """
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    body = (
        f"{_escape_property(key, key=True)}={_escape_property(password)}\n"
        f"{_escape_property(key + JAAS_SUFFIX, key=True)}="
        f"{_escape_property(jaas_quote(password)[1:-1])}\n"
    )
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(body)
    return SecretRef("file", str(target), key)


def jaas_quote(value: str) -> str:
    """``value`` as a double-quoted JAAS option value (``\\`` and ``"`` escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sql_string(value: str) -> str:
    """``value`` as a Flink SQL string literal: ``'`` doubled; line breaks refused."""
    if any(c in value for c in "\n\r\x00"):
        raise ConfigError("a value put into SQL text may not contain line breaks or NUL")
    return "'" + value.replace("'", "''") + "'"


@functools.cache
def _connector_kafka_prefix() -> str:
    """``org.apache.flink.kafka.shaded.`` when the connector jar relocates Kafka's classes."""
    from streaming_agents.runtime.environment import connector_jars

    plain = "org/apache/kafka/common/security/scram/ScramLoginModule.class"
    try:
        jars = connector_jars()  # the jars local_env and submit put on pipeline.jars
    except StreamingAgentsError:
        jars = []
    for jar in jars:
        with zipfile.ZipFile(jar) as archive:
            names = set(archive.namelist())
        if _SHADED.replace(".", "/") + plain in names:
            return _SHADED
        if plain in names:
            return ""
    return _SHADED  # the project's connector (flink-sql-connector-kafka) is shaded


def _java_password(ref: SecretRef) -> str:
    """The reference a JAAS value can hold: the escaped form for files, checked for env."""
    if ref.provider == "file":
        if ref.visible() and f"{ref.key}{JAAS_SUFFIX}" not in read_properties(Path(ref.location)):
            raise ConfigError(
                f"secret file {ref.location} has no key {ref.key}{JAAS_SUFFIX} (the password "
                "escaped for JAAS): write it with streaming_agents.connectors.security."
                "write_secret_file"
            )
        return ref.text(JAAS_SUFFIX)
    if ref.visible() and any(c in ref.resolve() for c in '"\\'):
        raise ConfigError(
            f"the password in ${{env:{ref.location}}} contains a quote or backslash, which "
            "the Java clients cannot read from an environment variable; use a secret file "
            "(write_secret_file)"
        )
    return ref.text()


def client_properties(
    security: KafkaSecurity | None, *, kafka_prefix: str | None = None
) -> dict[str, str]:
    """Java client properties; secrets stay references resolved by each Kafka client.

    ``kafka_prefix`` is the package prefix of the Kafka classes in the Flink
    connector jar (detected: ``org.apache.flink.kafka.shaded.`` for
    flink-sql-connector-kafka, ``""`` for an unshaded client).
    """
    if security is None:
        return {}
    prefix = _connector_kafka_prefix() if kafka_prefix is None else kafka_prefix
    props = {"security.protocol": security.protocol}
    providers: set[str] = set()
    if security.password is not None and security.mechanism is not None:
        module = prefix + _LOGIN_MODULES[security.mechanism]
        username = jaas_quote(security.username or "")
        password = '"' + _java_password(security.password) + '"'
        props["sasl.mechanism"] = security.mechanism
        props["sasl.jaas.config"] = f"{module} required username={username} password={password};"
        providers.add(security.password.provider)
    if security.ca_location:
        props["ssl.truststore.type"] = "PEM"
        props["ssl.truststore.location"] = security.ca_location
    if security.truststore_location:
        props["ssl.truststore.location"] = security.truststore_location
        props["ssl.truststore.type"] = security.truststore_type or "PKCS12"
    if security.truststore_password is not None:
        props["ssl.truststore.password"] = security.truststore_password.text()
        providers.add(security.truststore_password.provider)
    if security.endpoint_identification is not None:
        value = "" if security.endpoint_identification == "none" else "https"
        props["ssl.endpoint.identification.algorithm"] = value
    providers |= _java_keystore(security, props)
    if providers:
        props["config.providers"] = ",".join(sorted(providers))
        for name in sorted(providers):
            props[f"config.providers.{name}.class"] = prefix + _PROVIDERS[name]
    return props


def _java_keystore(security: KafkaSecurity, props: dict[str, str]) -> set[str]:
    """The client keystore's Java properties (passwords as references); providers used."""
    if security.keystore_location is None or security.keystore_password is None:
        return set()
    props["ssl.keystore.location"] = security.keystore_location
    props["ssl.keystore.type"] = security.keystore_type or "PKCS12"
    props["ssl.keystore.password"] = security.keystore_password.text()
    key = security.key_password or security.keystore_password
    props["ssl.key.password"] = key.text()
    return {security.keystore_password.provider, key.provider}


def librdkafka_config(security: KafkaSecurity | None) -> dict[str, str]:
    """confluent-kafka (librdkafka) settings, secrets resolved here (never log the result)."""
    if security is None:
        return {}
    conf = {"security.protocol": security.protocol.lower()}
    if security.password is not None and security.mechanism is not None:
        conf["sasl.mechanism"] = security.mechanism
        conf["sasl.username"] = security.username or ""
        conf["sasl.password"] = security.password.resolve()
    ca = security.ca_location
    if ca is None and security.truststore_location and security.truststore_type == "PEM":
        ca = security.truststore_location
    if ca is not None:
        conf["ssl.ca.location"] = ca
    elif security.truststore_location:
        raise ConfigError(
            "librdkafka cannot read a JKS/PKCS12 truststore: set ssl.ca.location to the PEM CA"
        )
    if security.endpoint_identification is not None:
        conf["ssl.endpoint.identification.algorithm"] = security.endpoint_identification or "none"
    if security.keystore_location is not None and security.keystore_password is not None:
        conf["ssl.keystore.location"] = security.keystore_location
        conf["ssl.keystore.password"] = security.keystore_password.resolve()
    return conf


def merge_properties(
    security: KafkaSecurity | None, properties: Mapping[str, str] | None
) -> dict[str, str]:
    """Java properties of ``security`` plus explicit ``properties`` (a clash is a ConfigError)."""
    merged = client_properties(security)
    for key, value in (properties or {}).items():
        if key in merged and merged[key] != value:
            raise ConfigError(
                f"Kafka property {key!r} is set by the security setting and differently in "
                "the explicit properties"
            )
        merged[key] = value
    return merged


def table_options(
    security: KafkaSecurity | None, properties: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``properties.*`` options for a Flink SQL Kafka table (quote values with sql_string)."""
    return {f"properties.{k}": v for k, v in merge_properties(security, properties).items()}
