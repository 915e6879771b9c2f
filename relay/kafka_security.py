"""How every Kafka client of the relay connects: TLS, SASL and the client id, from the settings.

`kafka_options(settings)` is the one place that turns the `RELAY_KAFKA_*` settings into
aiokafka options; the producers, consumers and admin clients of every stage and tool are built
from it (through `relay.kafka`). `explain_failure` turns a failed first contact into an error
naming the setting to look at: aiokafka itself only says "Unable to bootstrap".
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any, Final

from relay.config import Settings
from relay.errors import BrokerError, ConfigError, Problem

TLS_PROTOCOLS: Final = ("SSL", "SASL_SSL")
PROBE_TIMEOUT_S: Final = 10.0
CLIENT_CERT_WAIT_S: Final = 1.0
NAME_MISMATCH: Final = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


def kafka_options(settings: Settings) -> dict[str, Any]:
    """The connection options of any aiokafka client (producer, consumer, admin)."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "client_id": settings.kafka_client_id,
        "security_protocol": protocol,
    }
    if protocol in TLS_PROTOCOLS:
        options["ssl_context"] = ssl_context(settings)
    if protocol.startswith("SASL_"):
        mechanism = settings.kafka_sasl_mechanism
        options["sasl_mechanism"] = mechanism
        if mechanism == "OAUTHBEARER":
            from relay.kafka_oauth import token_provider

            options["sasl_oauth_token_provider"] = token_provider(settings)
        else:
            options["sasl_plain_username"] = settings.kafka_sasl_username
            options["sasl_plain_password"] = settings.kafka_sasl_password.reveal()
    return options


def broker_tls(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context the Kafka clients use, or None in plaintext."""
    return ssl_context(settings) if settings.kafka_security_protocol in TLS_PROTOCOLS else None


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """Certificates verified (against the CA file, else the system's), host names checked."""
    try:
        context = ssl.create_default_context(cafile=settings.kafka_ssl_ca_file)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(
            problems=[Problem("RELAY_KAFKA_SSL_CA_FILE", f"is not a PEM CA bundle ({_why(exc)})")]
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = settings.kafka_ssl_check_hostname
    if settings.kafka_ssl_cert_file:
        try:
            context.load_cert_chain(
                settings.kafka_ssl_cert_file,
                settings.kafka_ssl_key_file,
                # A str (even empty) never prompts on a terminal for an encrypted key.
                password=settings.kafka_ssl_key_password.reveal(),
            )
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(
                problems=[
                    Problem(
                        "RELAY_KAFKA_SSL_CERT_FILE",
                        "with RELAY_KAFKA_SSL_KEY_FILE (and RELAY_KAFKA_SSL_KEY_PASSWORD) is "
                        f"not a usable certificate and key ({_why(exc)})",
                    )
                ]
            ) from None
    return context


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc.__class__.__name__)
    return getattr(exc, "strerror", None) or exc.__class__.__name__


async def tls_problem(settings: Settings) -> Problem | None:
    """Why a TLS handshake with the bootstrap servers fails, naming the setting; None if not."""
    if settings.kafka_security_protocol not in TLS_PROTOCOLS:
        return None
    context = ssl_context(settings)
    for server in settings.kafka_bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, int(port), ssl=context, server_hostname=host),
                PROBE_TIMEOUT_S,
            )
        except ssl.SSLCertVerificationError as exc:
            if exc.verify_code in NAME_MISMATCH:
                return Problem(
                    "RELAY_KAFKA_BOOTSTRAP",
                    f"the certificate of {host}:{port} is not valid for the name {host!r} "
                    "(host name verification, RELAY_KAFKA_SSL_CHECK_HOSTNAME): connect by a "
                    "name the certificate holds, and advertise that name",
                )
            return Problem(
                "RELAY_KAFKA_SSL_CA_FILE",
                f"the certificate of {host}:{port} is not trusted ({exc.verify_message}): "
                "RELAY_KAFKA_SSL_CA_FILE must hold the CA that signed it",
            )
        except ssl.SSLError as exc:
            return _handshake_problem(host, port, exc)
        except (OSError, TimeoutError):
            continue  # not reachable: not a TLS question
        try:
            # TLS 1.3 refuses a missing or unknown client certificate only after the
            # handshake, with an alert: read briefly (a broker says nothing unasked).
            await asyncio.wait_for(reader.read(1), CLIENT_CERT_WAIT_S)
        except ssl.SSLError as exc:
            return _handshake_problem(host, port, exc)
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    return None


def _handshake_problem(host: str, port: str, exc: ssl.SSLError) -> Problem:
    reason = _why(exc)
    if any(a in reason for a in ("CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA")):
        return Problem(
            "RELAY_KAFKA_SSL_CERT_FILE",
            f"{host}:{port} asks for a client certificate it trusts ({reason}): set "
            "RELAY_KAFKA_SSL_CERT_FILE and RELAY_KAFKA_SSL_KEY_FILE to one its CA signed",
        )
    return Problem(
        "RELAY_KAFKA_SECURITY_PROTOCOL",
        f"the TLS handshake with {host}:{port} failed ({reason}): does that listener speak TLS?",
    )


async def explain_failure(settings: Settings, exc: BaseException, doing: str) -> BrokerError:
    """A `BrokerError` for a failed first contact, naming the setting when TLS is the cause."""
    problem = await tls_problem(settings)
    if problem is not None:
        return BrokerError(f"cannot reach Kafka to {doing}: {problem}")
    hint = ""
    name = type(exc).__name__
    if "Sasl" in name or "Authentication" in name:
        hint = (
            " (the brokers refused the SASL login: check RELAY_KAFKA_SASL_MECHANISM, "
            "RELAY_KAFKA_SASL_USERNAME and RELAY_KAFKA_SASL_PASSWORD)"
        )
    detail = str(exc) if str(exc).startswith(name) else f"{name}: {exc}"
    return BrokerError(
        f"cannot reach Kafka at {settings.kafka_bootstrap} "
        f"({settings.kafka_security_protocol}) to {doing}: {detail}{hint}"
    )
