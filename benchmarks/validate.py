"""Access-token validations/s with identity.client next to bare joserfc, in one process.

    python -m benchmarks.validate [--rounds 10] [--tokens 2000] [--algs ES256,RS256]

The token is an access token as docs/provider.md describes it (header `typ: at+jwt` and `kid`,
every claim identity puts in it), signed with a fresh key. identity.client runs in its steady
state: the keys were fetched once (from discovery + JWKS served by an httpx2 MockTransport,
outside the measurement) and are cached. The baseline is the minimal joserfc way to verify the
same token with the same key object: `jwt.decode(token, key, algorithms=[alg])`, then a
`JWTClaimsRegistry` built once checking `iss`, `aud` and `exp` (30 s leeway). identity.client
does that work plus the checks the baseline skips: the `typ` header, the key looked up by `kid`
and its pinned algorithm, `iat`, `sub`, `jti` and `client_id` required.

Three sides per algorithm: joserfc (a plain loop), identity.client's async call (awaited in a
loop on one event loop, as the FastAPI dependency does) and its sync call. Rounds interleave
the sides, rotating which goes first, so all see the same machine load; a rate is validations
over the summed time of that side's batches. Target: identity.client ≥ 0.8× joserfc.

Prints a table, then the figures as one JSON line (the last line of stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx2 as httpx
from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey
from joserfc.jwt import JWTClaimsRegistry

from identity.client import TokenValidator

ISSUER = "https://identity.example.com"
CLIENT_ID = "client-bench-1"
TARGET = 0.8


def provider_transport(public: dict[str, Any]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": ISSUER + "/jwks"})
        return httpx.Response(200, json={"keys": [public]})

    return httpx.MockTransport(answer)


def access_token(alg: str, key: Key, kid: str) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "k3Jq0a9-stable-member-hash",
        "aud": CLIENT_ID,
        "client_id": CLIENT_ID,
        "scope": "openid profile email",
        "jti": uuid.uuid4().hex,
        "sid": "sid-0001",
        "iat": now,
        "exp": now + 3600,
        "auth_time": now,
        "tenant_id": "t-acme-0001",
        "tenant_code": "acme",
        "preferred_username": "alice",
        "name": "Alice",
        "role": "user",
        "org_code": "sales",
    }
    header = {"alg": alg, "kid": kid, "typ": "at+jwt"}
    return jwt.encode(header, claims, key, algorithms=[alg], default_type=None)


async def measure(alg: str, rounds: int, n: int) -> dict[str, Any]:
    private: Key = ECKey.generate_key("P-256") if alg == "ES256" else RSAKey.generate_key(2048)
    kid = uuid.uuid4().hex[:16]
    public_jwk = private.as_dict(private=False, kid=kid, alg=alg, use="sig")
    public = ECKey.import_key(public_jwk) if alg == "ES256" else RSAKey.import_key(public_jwk)
    token = access_token(alg, private, kid)
    transport = provider_transport(dict(public_jwk))
    async with httpx.AsyncClient(transport=transport) as http:
        sync_http = httpx.Client(transport=transport)
        validator = TokenValidator(ISSUER, CLIENT_ID, http=http, sync_http=sync_http)
        await validator.validate_access_token(token)  # fetch the keys once: the steady state
        validator.validate_access_token_sync(token)
        registry = JWTClaimsRegistry(
            leeway=30,
            iss={"essential": True, "value": ISSUER},
            aud={"essential": True, "value": CLIENT_ID},
            exp={"essential": True},
        )

        def joserfc_side() -> float:
            start = time.perf_counter()
            for _ in range(n):
                registry.validate(jwt.decode(token, public, algorithms=[alg]).claims)
            return time.perf_counter() - start

        async def async_side() -> float:
            start = time.perf_counter()
            for _ in range(n):
                await validator.validate_access_token(token)
            return time.perf_counter() - start

        def sync_side() -> float:
            start = time.perf_counter()
            for _ in range(n):
                validator.validate_access_token_sync(token)
            return time.perf_counter() - start

        sides: list[tuple[str, Callable[[], Any]]] = [
            ("joserfc", joserfc_side),
            ("client_async", async_side),
            ("client_sync", sync_side),
        ]
        spent = {name: 0.0 for name, _ in sides}
        for r in range(rounds):
            for name, side in sides[r % 3 :] + sides[: r % 3]:
                outcome = side()
                spent[name] += await outcome if asyncio.iscoroutine(outcome) else outcome
        assert validator.keys.fetches == 1
        sync_http.close()
    rates = {name: rounds * n / seconds for name, seconds in spent.items()}
    return {
        "alg": alg,
        "joserfc_per_s": round(rates["joserfc"]),
        "client_async_per_s": round(rates["client_async"]),
        "client_sync_per_s": round(rates["client_sync"]),
        "ratio_async": round(rates["client_async"] / rates["joserfc"], 3),
        "ratio_sync": round(rates["client_sync"] / rates["joserfc"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=2000, help="validations per batch")
    parser.add_argument("--algs", default="ES256,RS256")
    args = parser.parse_args()
    results = [asyncio.run(measure(alg, args.rounds, args.tokens)) for alg in args.algs.split(",")]
    print(f"{'alg':<6} {'joserfc/s':>10} {'client async/s':>15} {'client sync/s':>14}  ratios")
    for r in results:
        verdict = "ok" if min(r["ratio_async"], r["ratio_sync"]) >= TARGET else "BELOW TARGET"
        print(
            f"{r['alg']:<6} {r['joserfc_per_s']:>10} {r['client_async_per_s']:>15} "
            f"{r['client_sync_per_s']:>14}  async {r['ratio_async']:.2f}x, "
            f"sync {r['ratio_sync']:.2f}x (target >= {TARGET}x: {verdict})"
        )
    summary = {"benchmark": "validate", "rounds": args.rounds, "tokens": args.tokens}
    print(json.dumps(summary | {"results": results, "target": TARGET}))


if __name__ == "__main__":
    main()
