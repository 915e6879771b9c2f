"""OAUTHBEARER token providers for the Kafka clients (`RELAY_KAFKA_OAUTH_TOKEN_PROVIDER`).

    oidc            OAuth 2.0 client credentials grant against RELAY_KAFKA_OAUTH_TOKEN_URL
                    (Confluent Cloud, Strimzi with Keycloak, any OIDC provider)
    aws-msk-iam     Amazon MSK IAM, signed by aws-msk-iam-sasl-signer-python (the `msk` extra)
    module:factory  your own: `factory(settings)` returns an aiokafka `AbstractTokenProvider`

Tokens are cached and refreshed before they expire (aiokafka asks at every connection). A
token or secret never appears in an error or a repr.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import time
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import quote_plus

import aiohttp
from aiokafka.abc import AbstractTokenProvider

from relay.config import Settings
from relay.errors import BrokerError, ConfigError, Problem
from relay.secret import Secret

REFRESH_AT: Final = 0.8  # share of a token's lifetime after which it is refreshed
DEFAULT_LIFETIME_S: Final = 300.0
FETCH_TIMEOUT_S: Final = 15.0

Clock = Callable[[], float]


class ClientCredentialsTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """Access tokens by the client credentials grant (RFC 6749 4.4), client_secret_basic."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: Secret,
        scope: str | None = None,
        *,
        clock: Clock = time.monotonic,
    ):
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self._clock = clock
        self._token: Secret | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0

    def __repr__(self) -> str:
        return f"ClientCredentialsTokenProvider({self.token_url!r}, {self.client_id!r})"

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                token, lifetime_s = await self._fetch()
                self._token = token
                self._refresh_at = self._clock() + lifetime_s * REFRESH_AT
            return self._token.reveal()

    async def _fetch(self) -> tuple[Secret, float]:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        # client_secret_basic: each part form-encoded, then base64 (RFC 6749 2.3.1).
        pair = f"{quote_plus(self.client_id)}:{quote_plus(self._client_secret.reveal())}"
        headers = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
        self.fetches += 1
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout, trust_env=True) as session,
                session.post(self.token_url, data=form, headers=headers) as response,
            ):
                status = response.status
                body: Any = await response.json(content_type=None) if status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise BrokerError(
                f"OAUTHBEARER: cannot get a token from RELAY_KAFKA_OAUTH_TOKEN_URL "
                f"({type(exc).__name__})"
            ) from None
        if status != 200:
            hint = " (check RELAY_KAFKA_OAUTH_CLIENT_ID/_SECRET)" if status in (400, 401) else ""
            raise BrokerError(f"OAUTHBEARER: RELAY_KAFKA_OAUTH_TOKEN_URL answered {status}{hint}")
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise BrokerError("OAUTHBEARER: the token endpoint's answer has no access_token")
        lifetime = body.get("expires_in", DEFAULT_LIFETIME_S)
        lifetime_s = float(lifetime) if isinstance(lifetime, int | float) else DEFAULT_LIFETIME_S
        return Secret(token), max(lifetime_s, 1.0)


class MskIamTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """Amazon MSK IAM tokens, signed with the default AWS credential chain of the process."""

    def __init__(self, region: str, *, clock: Clock = time.time):
        try:
            from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
        except ImportError:
            raise ConfigError(
                problems=[
                    Problem(
                        "RELAY_KAFKA_OAUTH_TOKEN_PROVIDER",
                        "aws-msk-iam needs the msk extra: pip install 'conversion-relay[msk]'",
                    )
                ]
            ) from None
        self.region = region
        self._signer: Any = MSKAuthTokenProvider
        self._clock = clock
        self._token: Secret | None = None
        self._expires_at_s = 0.0

    def __repr__(self) -> str:
        return f"MskIamTokenProvider({self.region!r})"

    async def token(self) -> str:
        if self._token is None or self._clock() >= self._expires_at_s - 60:
            token, expiry_ms = await asyncio.to_thread(
                self._signer.generate_auth_token, self.region
            )
            self._token, self._expires_at_s = Secret(token), expiry_ms / 1000
        return self._token.reveal()


def token_provider(settings: Settings) -> AbstractTokenProvider:
    """The provider `RELAY_KAFKA_OAUTH_TOKEN_PROVIDER` names."""
    name = settings.kafka_oauth_token_provider or ""
    if name == "oidc":
        return ClientCredentialsTokenProvider(
            settings.kafka_oauth_token_url or "",
            settings.kafka_oauth_client_id or "",
            settings.kafka_oauth_client_secret,
            settings.kafka_oauth_scope,
        )
    if name == "aws-msk-iam":
        return MskIamTokenProvider(settings.kafka_aws_region or "")
    module_name, _, attribute = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(
            problems=[Problem("RELAY_KAFKA_OAUTH_TOKEN_PROVIDER", f"cannot import {name!r}")]
        ) from None
    provider = factory(settings)
    if not isinstance(provider, AbstractTokenProvider):
        raise ConfigError(
            problems=[
                Problem(
                    "RELAY_KAFKA_OAUTH_TOKEN_PROVIDER",
                    f"{name} returned {type(provider).__name__}, not an AbstractTokenProvider",
                )
            ]
        )
    return provider
