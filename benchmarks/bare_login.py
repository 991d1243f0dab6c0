"""The login benchmark's baseline: a bare endpoint making the same two outbound calls.

    python -m benchmarks.bare_login PORT

`GET /callback?code=…` exchanges the code at `{BARE_DOMAIN}/api/v1/oauth2/token` and reads
`/api/v1/oauth2/userinfo`, with one pooled httpx2 client and credentials from the environment
(BARE_DOMAIN, BARE_CLIENT_ID, BARE_CLIENT_SECRET, BARE_REDIRECT_URI), then answers 303. No
database, no checks, no session: only what any login must do over the network.
"""

from __future__ import annotations

import os
import sys

import httpx2 as httpx
import uvicorn
from fastapi import FastAPI
from fastapi.responses import RedirectResponse, Response

app = FastAPI()
http = httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=200))
DOMAIN = os.environ.get("BARE_DOMAIN", "")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/callback")
async def callback(code: str) -> Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": os.environ["BARE_CLIENT_ID"],
        "client_secret": os.environ["BARE_CLIENT_SECRET"],
        "redirect_uri": os.environ["BARE_REDIRECT_URI"],
    }
    token = await http.post(DOMAIN + "/api/v1/oauth2/token", data=form)
    if token.status_code != 200:
        return Response(status_code=502)
    headers = {
        "Authorization": f"Bearer {token.json()['access_token']}",
        "Accept": "application/json",
    }
    info = await http.get(DOMAIN + "/api/v1/oauth2/userinfo", headers=headers)
    if info.status_code != 200:
        return Response(status_code=502)
    return RedirectResponse("/", status_code=303)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
