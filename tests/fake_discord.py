"""A loopback fake of Discord's HTTP API and gateway, enough for a real discord.py client.

It speaks the real payload shapes (JSON text frames, no compression): HELLO,
IDENTIFY -> READY, heartbeats, RESUME -> RESUMED, opcode 7 and close codes on
demand, and records every HTTP request with the time it arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

APP_ID = "1100000000000000001"
BOT_USER = {
    "id": APP_ID,
    "username": "cablebot",
    "discriminator": "0",
    "global_name": None,
    "avatar": None,
    "bot": True,
    "flags": 0,
}
GUILD_ID = "1200000000000000001"
CHANNEL_ID = "1300000000000000001"
_ids = itertools.count(1400000000000000001)
READER = {
    "id": "1500000000000000001",
    "username": "reader",
    "discriminator": "0",
    "global_name": "Reader",
    "avatar": None,
}
CHANNEL = {
    "id": CHANNEL_ID,
    "type": 0,
    "guild_id": GUILD_ID,
    "name": "general",
    "position": 0,
    "permission_overwrites": [],
    "nsfw": False,
    "parent_id": None,
    "topic": None,
    "last_message_id": None,
    "rate_limit_per_user": 0,
}
GUILD = {
    "id": GUILD_ID,
    "name": "Cable readers",
    "icon": None,
    "owner_id": READER["id"],
    "afk_channel_id": None,
    "afk_timeout": 300,
    "verification_level": 0,
    "default_message_notifications": 0,
    "explicit_content_filter": 0,
    "features": [],
    "mfa_level": 0,
    "system_channel_id": None,
    "system_channel_flags": 0,
    "rules_channel_id": None,
    "vanity_url_code": None,
    "description": None,
    "banner": None,
    "premium_tier": 0,
    "preferred_locale": "en-US",
    "public_updates_channel_id": None,
    "nsfw_level": 0,
    "premium_progress_bar_enabled": False,
    "large": False,
    "member_count": 2,
    "unavailable": False,
    "joined_at": "2026-01-01T00:00:00+00:00",
    "emojis": [],
    "stickers": [],
    "roles": [
        {
            "id": GUILD_ID,
            "name": "@everyone",
            "permissions": "2248473465835073",
            "position": 0,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
    ],
    "channels": [CHANNEL],
    "members": [
        {
            "user": BOT_USER,
            "roles": [],
            "joined_at": "2026-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
        }
    ],
    "threads": [],
    "voice_states": [],
    "presences": [],
    "stage_instances": [],
    "guild_scheduled_events": [],
}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON with the bare content type discord.py checks for (aiohttp would add a charset)."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def snowflake() -> str:
    return str(next(_ids))


@dataclass
class Request:
    method: str
    path: str
    body: Any
    at: float  # time.monotonic() on arrival
    status: int = 200


@dataclass
class FakeDiscord:
    """Start with `await fake.start()`; point `discord.http.Route.BASE` at `fake.api_base`."""

    requests: list[Request] = field(default_factory=list)
    gateway_events: list[dict] = field(default_factory=list)  # what the client sent on the gateway
    rate_limit_next: dict[str, int] = field(default_factory=dict)  # path prefix -> 429s still to send
    sent: list[dict] = field(default_factory=list)  # interaction follow-up messages, as returned to the bot
    retry_after: float = 0.2  # seconds a 429 asks the client to wait
    close_after_identify: int | None = None  # a close code to send instead of READY
    sequence: int = 0

    def __post_init__(self) -> None:
        self._ws: web.WebSocketResponse | None = None
        self._new_request = asyncio.Event()
        self.ready = asyncio.Event()
        self.resumed = asyncio.Event()
        self.identified = asyncio.Event()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gw", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._http)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.api_base = f"http://127.0.0.1:{port}/api/v10"
        self.gateway_url = f"ws://127.0.0.1:{port}/gw"

    async def stop(self) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        await self._runner.cleanup()

    # --- HTTP ---------------------------------------------------------------------------

    async def _http(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        body = await request.json() if request.can_read_body else None
        for prefix, left in self.rate_limit_next.items():
            if path.startswith(prefix) and left > 0:
                self.rate_limit_next[prefix] = left - 1
                self._record(request.method, path, body, status=429)
                return _json(
                    {"message": "You are being rate limited.", "retry_after": self.retry_after, "global": False},
                    status=429,
                    headers={
                        "X-RateLimit-Scope": "user",
                        "Retry-After": str(self.retry_after),
                        "Via": "1.1 google",
                    },  # as Discord sends it
                )
        self._record(request.method, path, body)
        if path == "/users/@me":
            return _json(BOT_USER)
        if path == "/oauth2/applications/@me":
            return _json(
                {
                    "id": APP_ID,
                    "name": "cablebot",
                    "description": "",
                    "icon": None,
                    "bot_public": True,
                    "bot_require_code_grant": False,
                    "owner": BOT_USER,
                    "verify_key": "0" * 64,
                    "flags": 0,
                }
            )
        if path == "/gateway/bot":
            limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
            return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})
        if path.startswith(f"/applications/{APP_ID}") and path.endswith("/commands"):
            return _json([dict(c, id=snowflake(), application_id=APP_ID, version="1") for c in body or []])
        if path.endswith("/callback"):  # discord.py asks ?with_response=true
            kind = (body or {}).get("type")
            resource: dict[str, Any] = {"type": kind}
            if kind == 4:
                resource["message"] = self._message((body or {}).get("data") or {})
            interaction = {
                "id": path.split("/")[2],
                "type": 2,
                "response_message_id": snowflake(),
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(((body or {}).get("data") or {}).get("flags", 0) & 64),
            }
            return _json({"interaction": interaction, "resource": resource})
        if path.startswith("/channels/") and path.endswith("/threads"):  # a thread from a message
            channel_id = path.split("/")[2]
            return _json(
                {
                    "id": snowflake(),
                    "type": 11,
                    "guild_id": GUILD_ID,
                    "parent_id": channel_id,
                    "owner_id": APP_ID,
                    "name": (body or {}).get("name", ""),
                    "last_message_id": None,
                    "rate_limit_per_user": 0,
                    "message_count": 0,
                    "member_count": 1,
                    "flags": 0,
                    "thread_metadata": {
                        "archived": False,
                        "auto_archive_duration": 1440,
                        "locked": False,
                        "archive_timestamp": "2026-11-28T00:00:00+00:00",
                    },
                }
            )
        if path.startswith("/channels/") and path.endswith("/messages"):
            return _json(self._message(body or {}, path.split("/")[2]))
        if path.startswith(f"/webhooks/{APP_ID}/"):
            message = self._message(body or {})
            self.sent.append(message)
            return _json(message)
        return _json({})

    @staticmethod
    def _message(body: dict, channel_id: str = CHANNEL_ID) -> dict:
        """The message object Discord returns for a message the bot sent."""
        return {
            "id": snowflake(),
            "channel_id": channel_id,
            "type": 0,
            "author": BOT_USER,
            "content": body.get("content") or "",
            "embeds": body.get("embeds") or [],
            "timestamp": "2026-11-28T00:00:00+00:00",
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "pinned": False,
            "flags": body.get("flags", 0),
            "components": body.get("components") or [],
        }

    def _record(self, method: str, path: str, body: Any, status: int = 200) -> None:
        self.requests.append(Request(method, path, body, time.monotonic(), status))
        self._new_request.set()

    async def wait_for_request(self, predicate, timeout: float = 30.0) -> Request:
        """The first recorded request matching `predicate`, waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        while True:
            for r in self.requests:
                if predicate(r):
                    return r
            self._new_request.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no matching request")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_request.wait(), remaining)

    # --- gateway ------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None}))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            event = json.loads(msg.data)
            self.gateway_events.append(event)
            op = event["op"]
            if op == 1:
                await ws.send_str(json.dumps({"op": 11, "d": None, "s": None, "t": None}))
            elif op == 2:
                self.identified.set()
                if self.close_after_identify:
                    await ws.close(code=self.close_after_identify, message=b"closed by the fake")
                    break
                await self.dispatch(
                    "READY",
                    {
                        "v": 10,
                        "user": BOT_USER,
                        "session_id": "fake-session",
                        "guilds": [{"id": GUILD_ID, "unavailable": True}],
                        "resume_gateway_url": self.gateway_url,
                        "shard": [0, 1],
                        "application": {"id": APP_ID, "flags": 0},
                    },
                )
                await self.dispatch("GUILD_CREATE", GUILD)
                self.ready.set()
            elif op == 6:
                await self.dispatch("RESUMED", {})
                self.resumed.set()
        return ws

    async def dispatch(self, event: str, data: dict) -> None:
        assert self._ws is not None
        self.sequence += 1
        await self._ws.send_str(json.dumps({"op": 0, "t": event, "s": self.sequence, "d": data}))

    async def request_reconnect(self) -> None:
        """Opcode 7: the client should reconnect and RESUME."""
        assert self._ws is not None
        self.resumed.clear()
        await self._ws.send_str(json.dumps({"op": 7, "d": None, "s": None, "t": None}))


def user_message(
    content: str,
    channel_id: str = CHANNEL_ID,
    guild: bool = True,
    reply_to: str | None = None,
    mention_bot: bool = False,
) -> dict:
    """A MESSAGE_CREATE payload from a person, in a guild channel (or a DM with guild=False)."""
    data = {
        "id": snowflake(),
        "channel_id": channel_id,
        "type": 19 if reply_to else 0,
        "author": READER,
        "content": content,
        "timestamp": "2026-11-28T00:00:00+00:00",
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [BOT_USER] if mention_bot else [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "flags": 0,
    }
    if guild:
        data["guild_id"] = GUILD_ID
        data["member"] = {
            "roles": [],
            "joined_at": "2026-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
        }
    if reply_to:
        data["message_reference"] = {"message_id": reply_to, "channel_id": channel_id, "type": 0}
    return data


def button_interaction(message: dict, custom_id: str, user_id: str = "1500000000000000001") -> dict:
    """An INTERACTION_CREATE payload for a click on a button of `message` (a message the bot sent)."""
    payload = ask_interaction("", user_id)
    payload["type"] = 3
    payload["message"] = message
    payload["data"] = {"custom_id": custom_id, "component_type": 2}
    return payload


def ask_interaction(question: str, user_id: str = "1500000000000000001", **options: str) -> dict:
    """An INTERACTION_CREATE payload for `/ask question:<question>` in a guild channel, as Discord sends it."""
    user = {"id": user_id, "username": "reader", "discriminator": "0", "global_name": "Reader", "avatar": None}
    return {
        "id": snowflake(),
        "application_id": APP_ID,
        "type": 2,
        "token": f"interaction-token-{snowflake()}",
        "version": 1,
        "guild_id": GUILD_ID,
        "channel_id": CHANNEL_ID,
        "channel": CHANNEL,
        "member": {
            "user": user,
            "roles": [],
            "joined_at": "2026-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            "permissions": "2248473465835073",
            "nick": None,
            "avatar": None,
        },
        "app_permissions": "2248473465835073",
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": GUILD_ID},
        "context": 0,
        "attachment_size_limit": 10485760,
        "data": {
            "id": snowflake(),
            "name": "ask",
            "type": 1,
            "options": [{"name": "question", "type": 3, "value": question}]
            + [{"name": k, "type": 3, "value": v} for k, v in options.items()],
        },
    }
