"""`relay config`: check the settings (`check [--connect]`), show them (`dump`), the table.

`relay config check` loads every setting and the mapping file, builds what is built from
them at start (TLS contexts, the OAUTHBEARER token provider, the HTTP session rules) and
reports each problem with the setting's name, never a secret's value. With `--connect` it
also asks Kafka for its metadata (are the input topics there?) and its ACLs (do they allow
the SASL user what the stages need? a warning when the broker will not tell), and makes one
cheap authenticated call to X per credential: a one-item list of app event tags for an
account of the OAuth token, and for each pixel token an empty batch, which X refuses with 400
only after accepting the token. Exit 0: no problem; 1: problems (each on its own line).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from relay.config import BY_NAME, SETTINGS, Settings, load_settings
from relay.errors import ConfigError, Problem, RelayError
from relay.secret import MASK
from relay.settings_table import markdown, with_table
from relay.tools.kafka_acls import (
    AclsUnknown,
    Binding,
    Need,
    describe_bindings,
    needs,
    principal_of,
    refused,
)

log = logging.getLogger(__name__)

# The sandbox reads variables of its own under this prefix.
OTHER_PREFIXES = ("RELAY_SANDBOX_",)


@dataclass
class Report:
    """What a check found: problems (fail), warnings (say), and what was verified (ok)."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)

    def write(self, out: TextIO) -> None:
        for line in self.verified:
            print(f"ok: {line}", file=out)
        for warning in self.warnings:
            print(f"warning: {warning}", file=out)
        for problem in self.problems:
            print(f"problem: {problem}", file=out)
        verdict = f"{len(self.problems)} problem(s)" if self.problems else "no problem found"
        print(f"relay config check: {verdict}", file=out)


def unknown_variables(env: Mapping[str, str]) -> list[Problem]:
    """`RELAY_*` variables no row names: most often a typo that silently keeps a default."""
    known = set(BY_NAME) | {row.file_variable for row in SETTINGS if row.file_variable}
    return [
        Problem(name, "is not a setting of the relay (a typo?)")
        for name in sorted(env)
        if name.startswith("RELAY_") and name not in known and not name.startswith(OTHER_PREFIXES)
    ]


def built_problems(settings: Settings) -> list[Problem]:
    """What fails only when built from valid values: TLS material, token providers, pixels."""
    from relay.kafka_security import kafka_options
    from relay.xads.egress import Egress

    problems: list[Problem] = []
    builders: list[Callable[[], object]] = [
        lambda: kafka_options(settings),
        lambda: Egress.from_settings(settings).ssl_context(),
    ]
    for build in builders:
        try:
            build()
        except ConfigError as exc:
            problems.extend(exc.problems)
    creds = settings.credentials
    parts = {
        "RELAY_CONSUMER_KEY": creds.consumer_key,
        "RELAY_CONSUMER_SECRET": creds.consumer_secret,
        "RELAY_ACCESS_TOKEN": creds.access_token,
        "RELAY_ACCESS_TOKEN_SECRET": creds.access_token_secret,
    }
    if any(parts.values()) and not all(parts.values()):
        for name, value in parts.items():
            if not value:
                problems.append(Problem(name, "is missing while other OAuth credentials are set"))
    if settings.use_pixel_token:
        for pixel in settings.mapping.pixels.values():
            if not pixel.pixel_token:
                problems.append(Problem("RELAY_CONFIG", f"pixel {pixel.id} has no pixel_token"))
    return problems


def exposure_warnings(settings: Settings) -> list[Problem]:
    """Valid settings that expose data or credentials in transit: said, not refused."""
    from relay.config import is_loopback

    warnings: list[Problem] = []
    hosts = [s.strip().rpartition(":")[0] for s in settings.kafka_bootstrap.split(",")]
    remote = not all(is_loopback(h.strip("[]")) for h in hosts)
    if remote and settings.kafka_security_protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
        warnings.append(
            Problem(
                "RELAY_KAFKA_SECURITY_PROTOCOL",
                f"{settings.kafka_security_protocol} to a remote broker: raw emails, phones "
                "and device ids of the input topics cross the network in clear (use SSL or "
                "SASL_SSL)",
            )
        )
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL") and (
        not settings.kafka_ssl_check_hostname
    ):
        warnings.append(
            Problem(
                "RELAY_KAFKA_SSL_CHECK_HOSTNAME",
                "is false: any certificate of the CA passes for any broker",
            )
        )
    api_host = urlsplit(settings.api_base_url).hostname
    if settings.api_base_url.startswith("http://") and not is_loopback(api_host):
        warnings.append(
            Problem("RELAY_API_BASE_URL", "is http:// (RELAY_API_ALLOW_HTTP): no TLS to X")
        )
    return warnings


def raise_on_problems(settings: Settings) -> None:
    """What `relay run` calls before it starts: the same messages as `relay config check`."""
    problems = built_problems(settings)
    if problems:
        raise ConfigError(problems=problems)
    for warning in exposure_warnings(settings):
        log.warning("%s", warning)


async def kafka_report(settings: Settings, report: Report, stage: str = "all") -> None:
    from relay.kafka import make_admin
    from relay.kafka_security import explain_failure

    admin = make_admin(settings, request_timeout_ms=15_000)
    try:
        await admin.start()
        topics = set(await admin.list_topics())
        acls = await _acl_bindings(admin)
    except Exception as exc:
        failure = await explain_failure(settings, exc, "read its metadata")
        report.problems.append(Problem("RELAY_KAFKA_BOOTSTRAP", str(failure)))
        return
    finally:
        await admin.close()
    report.verified.append(
        f"Kafka at {settings.kafka_bootstrap} ({settings.kafka_security_protocol}) answered "
        f"with {len(topics)} topics"
    )
    for topic in settings.inputs:
        if topic not in topics:
            report.problems.append(
                Problem(
                    "RELAY_INPUTS",
                    f"topic {topic!r} does not exist (or these credentials may not describe it)",
                )
            )
    internal = (settings.outbound_topic, settings.dlq_topic, settings.attributions_topic)
    missing = [t for t in internal if t not in topics]
    if missing:
        report.warnings.append(
            Problem(
                "RELAY_TOPIC_PREFIX",
                f"{', '.join(missing)} will be created at start (the relay needs the right "
                "to create them, or create them beforehand)",
            )
        )
    created = {*internal, settings.delivered_topic, settings.delayed_topic}
    acl_report(settings, acls, needs(settings, stage, created - topics), report)


async def _acl_bindings(admin: object) -> list[Binding] | str:
    """The broker's ACL bindings, or why they cannot be known."""
    try:
        return await describe_bindings(admin)
    except AclsUnknown as exc:
        return str(exc)


def acl_report(
    settings: Settings, acls: list[Binding] | str, wanted: list[Need], report: Report
) -> None:
    """A problem per need the ACLs refuse; one warning when they cannot be checked."""
    principal = principal_of(settings)
    if isinstance(acls, str) or principal is None:
        why = acls if isinstance(acls, str) else "the principal is not a SASL username"
        report.warnings.append(
            Problem(
                "RELAY_KAFKA_BOOTSTRAP",
                f"cannot check ACLs: {why}; topic and group rights are not verified",
            )
        )
        return
    denied = refused(acls, principal, wanted)
    for need in denied:
        report.problems.append(
            Problem("RELAY_KAFKA_SASL_USERNAME", f"the ACLs do not allow {principal} {need}")
        )
    if not denied:
        report.verified.append(f"the ACLs allow {principal} what the stage(s) need")


async def api_report(settings: Settings, report: Report) -> None:
    from relay.xads.client import XAdsClient
    from relay.xads.egress import Egress
    from relay.xads.errors import ApiError, Forbidden, TransportError, Unauthorized

    creds = settings.credentials
    pixel_tokens = {p.id: p.pixel_token for p in settings.mapping.pixels.values()}
    async with XAdsClient(
        settings.api_base_url,
        creds,
        pixel_tokens=pixel_tokens,
        egress=Egress.from_settings(settings),
    ) as client:
        if creds.complete:
            account = _an_account(settings)
            if account is None:
                report.warnings.append(
                    Problem("RELAY_CONFIG", "names no account to check the OAuth credentials on")
                )
            else:
                try:
                    await client.app_event_tags.list(account, count=1)
                    report.verified.append(f"X accepts the OAuth credentials (account {account})")
                except Unauthorized:
                    report.problems.append(
                        Problem(
                            "RELAY_CONSUMER_KEY",
                            "X rejects the OAuth credentials (401): check RELAY_CONSUMER_KEY, "
                            "RELAY_CONSUMER_SECRET, RELAY_ACCESS_TOKEN, RELAY_ACCESS_TOKEN_SECRET",
                        )
                    )
                except Forbidden:
                    report.problems.append(
                        Problem("RELAY_CONFIG", f"the OAuth token may not manage {account} (403)")
                    )
                except TransportError as exc:
                    report.problems.append(Problem("RELAY_API_BASE_URL", _unreachable(exc)))
                    return
                except ApiError as exc:
                    report.warnings.append(
                        Problem("RELAY_API_BASE_URL", f"X answered {exc.status} to the check")
                    )
        if not settings.use_pixel_token:
            return
        for pixel_id, token in pixel_tokens.items():
            if not token:
                continue
            try:
                await client.post_web_conversions(pixel_id, [], use_pixel_token=True)
            except Unauthorized:
                report.problems.append(
                    Problem("RELAY_CONFIG", f"X rejects the pixel_token of pixel {pixel_id} (401)")
                )
                continue
            except TransportError as exc:
                report.problems.append(Problem("RELAY_API_BASE_URL", _unreachable(exc)))
                return
            except ApiError:
                pass  # 400 for the empty batch: the token itself was accepted
            report.verified.append(f"X accepts the pixel_token of pixel {pixel_id}")


def _an_account(settings: Settings) -> str | None:
    mapping = settings.mapping
    if mapping.token_accounts:
        return mapping.token_accounts[0]
    return next((p.account_id for p in mapping.pixels.values()), None)


def _unreachable(exc: BaseException) -> str:
    cause = type(exc.__cause__ or exc).__name__
    hint = " (its certificate is not trusted: RELAY_API_CA_FILE)" if "Certificate" in cause else ""
    return f"X cannot be reached ({cause}){hint}"


def check(env: Mapping[str, str], *, connect: bool = False, stage: str = "all") -> Report:
    """Everything `relay config check` does, for any environment mapping."""
    report = Report(warnings=unknown_variables(env))
    try:
        settings = load_settings(env)
    except ConfigError as exc:
        report.problems.extend(exc.problems)
        return report
    report.problems.extend(built_problems(settings))
    report.warnings.extend(exposure_warnings(settings))
    report.verified.append(
        f"{len(SETTINGS)} settings, {len(settings.mapping.pixels)} pixels in RELAY_CONFIG"
    )
    if connect and not report.problems:
        asyncio.run(_connect(settings, report, stage))
    return report


async def _connect(settings: Settings, report: Report, stage: str) -> None:
    await kafka_report(settings, report, stage)
    await api_report(settings, report)


def dump(settings: Settings, env: Mapping[str, str], out: TextIO) -> None:
    """The effective settings, one `NAME=value` a line; secrets and their kin masked."""
    values: dict[str, object] = {
        "RELAY_CONSUMER_KEY": settings.credentials.consumer_key,
        "RELAY_CONSUMER_SECRET": settings.credentials.consumer_secret,
        "RELAY_ACCESS_TOKEN": settings.credentials.access_token,
        "RELAY_ACCESS_TOKEN_SECRET": settings.credentials.access_token_secret,
    }
    for row in SETTINGS:
        value = getattr(settings, row.field) if row.field else values.get(row.name)
        if row.name == "RELAY_CONFIG":
            value = env.get("RELAY_CONFIG", "")
        if row.secret or row.from_file:
            shown = MASK if value else ""
        elif isinstance(value, Mapping):
            shown = ",".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, bool):
            shown = "true" if value else "false"
        else:
            shown = "" if value is None else str(value)
        print(f"{row.name}={shown}", file=out)


def add_config_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = sub.add_parser("config", help="the settings: check, dump, table")
    config_sub = config.add_subparsers(dest="config", required=True, metavar="ACTION")
    check_parser = config_sub.add_parser(
        "check",
        help="validate every setting and the mapping file; exit 1 on any problem",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check_parser.add_argument(
        "--connect", action="store_true", help="also reach Kafka and X with these settings"
    )
    check_parser.add_argument(
        "--stage",
        choices=("all", "ingest", "deliver"),
        default="all",
        help="the stage(s) whose Kafka ACLs --connect checks, as `relay run --stage`",
    )
    config_sub.add_parser("dump", help="the effective settings, secrets masked")
    table = config_sub.add_parser("table", help="the settings table in markdown (README.md)")
    table.add_argument(
        "--write", type=Path, default=None, help="replace the table between the marks of FILE"
    )


def run_config(args: argparse.Namespace) -> int:
    if args.config == "check":
        report = check(os.environ, connect=args.connect, stage=args.stage)
        report.write(sys.stdout)
        return 1 if report.problems else 0
    if args.config == "dump":
        dump(load_settings(os.environ), os.environ, sys.stdout)
        return 0
    if args.config == "table":
        table = markdown(SETTINGS)
        if args.write is None:
            print(table)
        else:
            args.write.write_text(with_table(args.write.read_text("utf-8"), table), "utf-8")
        return 0
    raise RelayError(f"unhandled config action {args.config}")  # argparse enforces the choices
