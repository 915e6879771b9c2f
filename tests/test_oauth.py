"""OAuth 1.0a signing against X's published example and an independent library."""

import random
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from oauthlib.oauth1 import Client

from relay.xads import oauth

X_EXAMPLE = dict(
    consumer_key="xvz1evFS4wEEPTGEFPHBog",
    consumer_secret="kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
    token="370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
    token_secret="LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
)
URL = "https://api.twitter.com/1.1/statuses/update.json?include_entities=true"
STATUS = "Hello Ladies + Gentlemen, a signed OAuth request!"
NONCE = "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"


def x_header(
    method: str, url: str, *, nonce: str, timestamp: int, form: dict[str, str] | None = None
) -> str:
    return oauth.authorization_header(
        method,
        url,
        consumer_key=X_EXAMPLE["consumer_key"],
        consumer_secret=X_EXAMPLE["consumer_secret"],
        token=X_EXAMPLE["token"],
        token_secret=X_EXAMPLE["token_secret"],
        form=form,
        nonce=nonce,
        timestamp=timestamp,
    )


def test_x_published_signature() -> None:
    header = x_header("POST", URL, form={"status": STATUS}, nonce=NONCE, timestamp=1318622958)
    params = oauth.parse_authorization_header(header)
    assert params["oauth_signature"] == "hCtSmYh+iHYCEqBWrE7C7hYmtUk="
    assert params["oauth_consumer_key"] == X_EXAMPLE["consumer_key"]


def test_signature_matches_oauthlib_for_a_query_request() -> None:
    url = "https://ads-api.x.com/12/accounts/18ce54d4x5t/app_lists?count=5&with_deleted=true"
    ours = oauth.parse_authorization_header(
        x_header("GET", url, nonce="abc123", timestamp=1700000000)
    )
    client = Client(
        X_EXAMPLE["consumer_key"],
        client_secret=X_EXAMPLE["consumer_secret"],
        resource_owner_key=X_EXAMPLE["token"],
        resource_owner_secret=X_EXAMPLE["token_secret"],
        nonce="abc123",
        timestamp="1700000000",
    )
    _, headers, _ = client.sign(url, http_method="GET")
    theirs = oauth.parse_authorization_header(headers["Authorization"])
    assert ours["oauth_signature"] == theirs["oauth_signature"]


def test_json_body_is_not_signed_and_query_is() -> None:
    url = "https://ads-api.x.com/12/measurement/conversions/o8z6j"
    a = x_header("POST", url, nonce="n", timestamp=1)
    b = x_header("POST", url + "?x=1", nonce="n", timestamp=1)
    assert (
        oauth.parse_authorization_header(a)["oauth_signature"]
        != (oauth.parse_authorization_header(b)["oauth_signature"])
    )
    assert dict(parse_qsl(urlsplit(url + "?x=1").query)) == {"x": "1"}


def test_base_url_normalization() -> None:
    assert oauth.base_url("HTTPS://Ads-API.x.com:443/12/x?a=1") == "https://ads-api.x.com/12/x"
    assert oauth.base_url("http://127.0.0.1:8080/12/x") == "http://127.0.0.1:8080/12/x"


def test_the_fast_percent_encoding_is_quote_of_rfc_3986() -> None:
    rng = random.Random(7)
    alphabet = [chr(c) for c in range(128)] + ["é", "ü", "€", "日", "\U0001f600"]
    for _ in range(3000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        assert oauth.pct(value) == quote(value, safe="-._~")


def test_the_signer_writes_what_authorization_header_writes() -> None:
    signer = oauth.Signer(
        X_EXAMPLE["consumer_key"],
        X_EXAMPLE["consumer_secret"],
        X_EXAMPLE["token"],
        X_EXAMPLE["token_secret"],
    )
    base = "https://ads-api.x.com/12/conversion_event"
    query = {"app_id": "333903271", "conversion_time": "2026-01-02T03:04:05.678Z", "a b": "c+d"}
    url = base + "?" + urlencode(query)
    expected = x_header("POST", url, nonce="n0nce", timestamp=1700000000)
    encoded = [(oauth.pct(k), oauth.pct(v)) for k, v in query.items()]
    for _ in range(2):  # the second one from the cached URL encoding
        got = signer.header("POST", base, encoded, nonce="n0nce", timestamp=1700000000)
        assert got == expected


def test_nonces_do_not_repeat() -> None:
    nonces = oauth.Nonces()
    drawn = [nonces.next() for _ in range(3 * oauth.NONCES_PER_DRAW)]
    assert len(set(drawn)) == len(drawn)
    assert all(len(n) == 32 and int(n, 16) >= 0 for n in drawn)


def test_encoding_an_encoded_parameter_string_needs_only_three_replacements() -> None:
    rng = random.Random(11)
    alphabet = [chr(c) for c in range(32, 127)] + ["é", "€"]
    for _ in range(500):
        pairs = [
            (oauth.pct("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))),) * 2
            for _ in range(rng.randint(1, 6))
        ]
        joined = "&".join(f"{k}={v}" for k, v in pairs)
        assert oauth.pct_of_encoded(joined) == quote(joined, safe="-._~")
