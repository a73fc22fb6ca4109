"""Two ASGI guards in front of the app: the API key (401) and the upload cap (413).

Both are plain ASGI middleware so that they answer before FastAPI parses anything: a request
without the key never reaches a handler, and an oversized body is refused from its
Content-Length or, without one, as soon as the bytes read pass the cap (never held in full).
"""

from __future__ import annotations

import hmac
import json
from typing import Any, Awaitable, Callable, Optional

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Awaitable[None]]

KEY_HEADER = "x-api-key"
KEY_COOKIE = "e2r_key"


async def _send_json(send: Callable[..., Awaitable[Any]], status: int, message: str,
                     headers: Optional[list[tuple[bytes, bytes]]] = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def presented_key(headers: dict[bytes, bytes]) -> Optional[str]:
    """The key a request carries: X-API-Key, `Authorization: Bearer KEY`, or the viewer's cookie."""
    if KEY_HEADER.encode() in headers:
        return headers[KEY_HEADER.encode()].decode("latin-1")
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == KEY_COOKIE:
            return value
    return None


class APIKeyGuard:
    """401 for every request without the key, except the viewer's one-time `/?key=KEY` sign-in.

    The viewer cannot put a header on `<img src>`, so `/?key=KEY` (checked here like a header)
    sets an HttpOnly, SameSite=Strict cookie and the page's own requests carry it.
    """

    def __init__(self, app: ASGIApp, api_key: Optional[str]):
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.api_key:
            return await self.app(scope, receive, send)
        key = presented_key(dict(scope.get("headers") or ()))
        if key is None and scope.get("path") == "/":
            from urllib.parse import parse_qs

            key = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("key") or [None])[0]
        if key is None or not hmac.compare_digest(key.encode("utf-8", "surrogateescape"), self.api_key.encode()):
            return await _send_json(send, 401, "missing or wrong API key: send it as the X-API-Key header "
                                               "(or open the viewer once as /?key=YOUR_KEY)",
                                    [(b"www-authenticate", b'Bearer realm="e2r"')])
        return await self.app(scope, receive, send)


class BodyLimit:
    """413 for a request body larger than `max_bytes` (declared or actually sent)."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.max_bytes
        message = (f"upload too large: the limit is {limit / 2**20:.1f} MiB per request "
                   "(one ECG is well under 1 MiB); start the server with a higher --max-upload-mb if needed")
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _send_json(send, 413, message)
        # No (or a small) declared length: read the body up to the cap, then replay it to the app.
        chunks: list[bytes] = []
        total = 0
        more = True
        while more:
            event = await receive()
            if event["type"] == "http.disconnect":
                return
            chunk = event.get("body", b"")
            total += len(chunk)
            if total > limit:
                return await _send_json(send, 413, message)
            chunks.append(chunk)
            more = event.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)
