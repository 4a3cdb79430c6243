"""The Discord bot: `/ask`, @mentions, DMs and follow-ups, as a thin shell over `Cablebot.ask()`.

Nothing here retrieves or chooses answers. This module only decides when to
answer, runs `ask()` off the event loop, and sends the rendered reply safely:
no mentions ever ping, Discord's size limits are respected, and failures get
the user a short apology while the bot keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import time
from collections import OrderedDict
from pathlib import Path

import aiohttp
import discord
from discord import app_commands

from cablebot.answering import Answer
from cablebot.config import Settings
from cablebot.core import Cablebot, Conversation, check_question
from cablebot.errors import CablebotError
from cablebot.feedback import record
from cablebot.rendering import MESSAGE_LIMIT, answer_embed, clip, sources_embed
from cablebot.retrieval import Filter

log = logging.getLogger("cablebot.discord")
NO_MENTIONS = discord.AllowedMentions.none()
discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False  # no voice: no warnings about its extras
APOLOGY = "Sorry, something went wrong while answering. The error is logged; please try again later."

# What to tell the operator when Discord refuses the connection for good.
CLOSE_CODES = {
    4004: "Discord rejected the token (gateway close 4004). Reset it on the Bot page of the Developer Portal "
    "and set DISCORD_TOKEN to the new one.",
    4010: "Discord rejected the shard settings (gateway close 4010).",
    4011: "The bot is in too many guilds to run without sharding (gateway close 4011).",
    4012: "Discord rejected the gateway API version (gateway close 4012); upgrade discord.py.",
    4013: "Discord rejected the requested intents (gateway close 4013).",
    4014: "The bot asked for a privileged intent that is not enabled (gateway close 4014). Enable it on the Bot "
    "page of the Developer Portal (Privileged Gateway Intents).",
}


def read_token(settings: Settings) -> str:
    """The bot token from DISCORD_TOKEN or the configured token file; never logged."""
    token = os.environ.get("DISCORD_TOKEN", "").strip()
    if not token and settings.discord_token_file:
        try:
            token = Path(settings.discord_token_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise CablebotError(
                f"cannot read the Discord token file {settings.discord_token_file}: {e.strerror}"
            ) from e
    if not token:
        raise CablebotError("no Discord token: set DISCORD_TOKEN (or [discord] token_file in config.toml)")
    return token


class RedactToken(logging.Filter):
    """Replaces the token in any log line, should a library ever print it."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, "[token]"), ()
        if record.exc_text and self.token in record.exc_text:
            record.exc_text = record.exc_text.replace(self.token, "[token]")
        return True


class Gate:
    """Per-user cooldown and a global limit on questions answered at once.

    `admit` reserves an answering slot before anything is awaited (before the
    deferral, before typing), so a burst of questions in the same instant can
    never run more than `max_concurrent` answers: the rest get the busy notice
    at once. The caller gives the slot back with `release`.
    """

    def __init__(self, cooldown: float, max_concurrent: int) -> None:
        self.cooldown = cooldown
        self.max_concurrent = max(1, max_concurrent)
        self.active = 0
        self._last: dict[int, float] = {}

    def admit(self, user_id: int) -> str | None:
        """None with a slot reserved for this user, or a short notice why not (no slot then)."""
        now = time.monotonic()
        wait = self._last.get(user_id, -1e9) + self.cooldown - now
        if wait > 0:
            return f"Please wait {wait:.0f} s before asking again."
        if self.active >= self.max_concurrent:
            return "I'm answering other questions right now; please ask again in a moment."
        self.active += 1
        self._last[user_id] = now
        return None

    def release(self) -> None:
        self.active -= 1


class AnswerView(discord.ui.View):
    """The buttons under an answer: "Sources" shows the full passages to whoever clicks, privately;
    👍 and 👎 record the clicker's verdict in the feedback file (as a salted hash of their id)."""

    def __init__(self, answer: Answer, feedback_path: Path) -> None:
        super().__init__(timeout=3600)
        self.answer = answer
        self.feedback_path = feedback_path

    @discord.ui.button(label="Sources", style=discord.ButtonStyle.secondary)
    async def sources(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.send_message(
            embed=sources_embed(self.answer), ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    @discord.ui.button(emoji="👍", style=discord.ButtonStyle.secondary)
    async def good(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._verdict(interaction, "good")

    @discord.ui.button(emoji="👎", style=discord.ButtonStyle.secondary)
    async def bad(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._verdict(interaction, "bad")

    async def _verdict(self, interaction: discord.Interaction, verdict: str) -> None:
        try:
            await asyncio.to_thread(
                record, self.feedback_path, self.answer, verdict, interaction.user.id, "discord"
            )
            text = "Thanks, noted: this helps improve the answers."
        except CablebotError as e:
            log.warning("%s", e)
            text = "Sorry, your feedback could not be saved."
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


class CablebotClient(discord.Client):
    """The bot. `core` is loaded before the client connects, so it is ready when Discord says so."""

    RATE_LIMIT_WAIT = 30.0  # seconds any request may wait on Discord's rate limits before it is given up

    def __init__(self, core: Cablebot, settings: Settings, intents: discord.Intents | None = None) -> None:
        # No privileged intent: Discord sends message content for DMs and messages that mention the bot.
        super().__init__(
            intents=intents or discord.Intents.default(),
            allowed_mentions=NO_MENTIONS,
            max_ratelimit_timeout=self.RATE_LIMIT_WAIT,  # a longer rate limit raises instead of hanging
        )
        self.core = core
        self.settings = settings
        self.gate = Gate(settings.discord_cooldown, settings.discord_max_concurrent)
        self.conversations: OrderedDict[int, Conversation] = OrderedDict()  # by answer message or thread id
        self.tree = app_commands.CommandTree(self)

        @self.tree.command(name="ask", description="Ask a question; the answer is quoted from the documents.")
        @app_commands.describe(
            question="Your question",
            origin='Only cables from this origin, e.g. "Mexico"',
            since="Only documents created on or after this date (2009, 2009-10, 2009-10-23)",
            until="Only documents created on or before this date",
            classification="Only this classification, e.g. SECRET",
            doc="Only this document, e.g. the reference ID 09MEXICO3061",
        )
        async def ask(
            interaction: discord.Interaction,
            question: str,
            origin: str | None = None,
            since: str | None = None,
            until: str | None = None,
            classification: str | None = None,
            doc: str | None = None,
        ) -> None:
            await self.ask_command(
                interaction,
                question,
                dict(origin=origin, since=since, until=until, classification=classification, doc=doc),
            )

    async def setup_hook(self) -> None:
        guild = discord.Object(self.settings.discord_guild_id) if self.settings.discord_guild_id else None
        if guild:
            self.tree.copy_global_to(guild=guild)
        synced = await self.tree.sync(guild=guild)
        log.info("synced %d command(s) %s", len(synced), f"to guild {guild.id}" if guild else "globally")

    async def on_ready(self) -> None:
        log.info("ready as %s; %d chunks indexed", self.user, len(self.core.index.chunks))

    # --- when to answer ---------------------------------------------------------------

    def allowed(self, guild_id: int | None, channel_id: int | None) -> bool:
        s = self.settings
        if guild_id is None:  # direct messages
            return not s.discord_allowed_guilds and not s.discord_allowed_channels
        return (not s.discord_allowed_guilds or guild_id in s.discord_allowed_guilds) and (
            not s.discord_allowed_channels or channel_id in s.discord_allowed_channels
        )

    def _remember(self, key: int, conversation: Conversation) -> None:
        self.conversations[key] = conversation
        self.conversations.move_to_end(key)
        while len(self.conversations) > 10_000:
            self.conversations.popitem(last=False)

    async def answer(self, question: str, conversation: Conversation, where: Filter | None = None) -> Answer:
        """`Cablebot.ask` in a worker thread, so heartbeats and other events keep flowing."""
        return await asyncio.to_thread(self.core.ask, question, conversation, where)

    async def ask_command(
        self, interaction: discord.Interaction, question: str, filters: dict[str, str | None] | None = None
    ) -> None:
        """/ask: `filters` are its options (origin, since, until, classification, doc)."""
        if not self.allowed(interaction.guild_id, interaction.channel_id):
            await interaction.response.send_message("I don't answer questions here.", ephemeral=True)
            return
        try:
            question = check_question(question)
            where = Filter(**(filters or {})) or None
        except CablebotError as e:  # known before deferring: the answer to it can still be private
            await interaction.response.send_message(clip(str(e), MESSAGE_LIMIT), ephemeral=True)
            return
        notice = self.gate.admit(interaction.user.id)  # the slot is taken before anything is awaited
        if notice:
            await interaction.response.send_message(notice, ephemeral=True)
            return
        try:
            await interaction.response.defer(thinking=True)  # Discord's 3-second deadline
            conversation = Conversation()
            answer = await self.answer(question, conversation, where)
            message = await self._followup(
                interaction,
                embed=answer_embed(answer),
                view=AnswerView(answer, self.settings.feedback_path),
                allowed_mentions=NO_MENTIONS,
                wait=True,
            )
            if message is not None:
                self._remember(message.id, conversation)
        except CablebotError as e:
            # The first follow-up replaces the public "thinking…" message: only the second can be private.
            await self._followup(interaction, "I could not answer that.", allowed_mentions=NO_MENTIONS)
            await self._followup(
                interaction, clip(str(e), MESSAGE_LIMIT), ephemeral=True, allowed_mentions=NO_MENTIONS
            )
        except Exception:
            log.exception("error answering /ask %r", question)
            await self._followup(interaction, APOLOGY, allowed_mentions=NO_MENTIONS)
        finally:
            self.gate.release()

    async def _followup(self, interaction: discord.Interaction, *args, **kwargs) -> discord.WebhookMessage | None:
        """A follow-up, given up after RATE_LIMIT_WAIT seconds like every other request (a rate-limited webhook
        would otherwise wait as long as Discord asks); None when it was given up."""
        try:
            async with asyncio.timeout(self.RATE_LIMIT_WAIT):
                return await interaction.followup.send(*args, **kwargs)
        except TimeoutError:
            log.warning("gave up a follow-up to interaction %s after %.0f s", interaction.id, self.RATE_LIMIT_WAIT)
            return None

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or self.user is None:
            return
        conversation, where = self._conversation_for(message)
        if conversation is None or not self.allowed(
            message.guild.id if message.guild else None, message.channel.id
        ):
            return
        question = re.sub(rf"<@!?{self.user.id}>", " ", message.content).strip()
        if not question:
            return
        try:
            question = check_question(question)
        except CablebotError as e:  # before any thread is opened for it
            await message.reply(clip(str(e), MESSAGE_LIMIT), allowed_mentions=NO_MENTIONS)
            return
        notice = self.gate.admit(message.author.id)  # the slot is taken before anything is awaited
        if notice:
            await message.reply(notice, allowed_mentions=NO_MENTIONS, delete_after=10)
            return
        try:
            await self._answer_message(message, question, conversation, where)
        finally:
            self.gate.release()

    async def _answer_message(
        self, message: discord.Message, question: str, conversation: Conversation, where: str
    ) -> None:
        channel = message.channel
        if where == "new" and self.settings.discord_threads and isinstance(channel, discord.TextChannel):
            try:
                channel = await message.create_thread(name=clip(question, 90))
            except discord.HTTPException:
                log.info("cannot open a thread in #%s; replying in the channel", message.channel)
        try:
            async with channel.typing():
                answer = await self.answer(question, conversation)
            kwargs = {
                "embed": answer_embed(answer),
                "view": AnswerView(answer, self.settings.feedback_path),
                "allowed_mentions": NO_MENTIONS,
            }
            if channel is message.channel:
                sent = await message.reply(**kwargs)
            else:
                sent = await channel.send(**kwargs)
                self._remember(channel.id, conversation)
            self._remember(sent.id, conversation)
        except CablebotError as e:
            await message.reply(clip(str(e), MESSAGE_LIMIT), allowed_mentions=NO_MENTIONS)
        except Exception:
            log.exception("error answering message %s", message.id)
            await message.reply(APOLOGY, allowed_mentions=NO_MENTIONS)

    def _conversation_for(self, message: discord.Message) -> tuple[Conversation | None, str]:
        """The conversation a message belongs to, if the bot should answer it."""
        if message.channel.id in self.conversations:  # a thread the bot opened
            return self.conversations[message.channel.id], "thread"
        ref = message.reference.message_id if message.reference else None
        if ref in self.conversations:  # a reply to one of the bot's answers
            return self.conversations[ref], "reply"
        if message.guild is None or self.user in message.mentions:
            return Conversation(), "new"
        return None, ""


def point_at(api_base: str, gateway_url: str) -> None:
    """Use another Discord API and gateway (a local fake in tests); empty strings keep Discord's."""
    import yarl

    if api_base:
        discord.http.Route.BASE = api_base.rstrip("/")
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def run(core: Cablebot) -> int:
    """Run the bot over `core` (loaded before it connects) until SIGINT/SIGTERM; errors Discord will not
    recover from end it with one line."""
    settings = core.settings
    token = read_token(settings)
    discord.utils.setup_logging(level=logging.INFO)
    logging.getLogger("faiss").setLevel(logging.WARNING)  # its CPU-feature notices are not for users
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactToken(token))
    point_at(settings.discord_api_base, settings.discord_gateway_url)

    async def main() -> None:
        client = CablebotClient(core, settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(client.close()))
        async with client:
            await client.start(token, reconnect=True)

    try:
        asyncio.run(main())
    except discord.LoginFailure as e:
        raise CablebotError(
            "Discord rejected the token (401 Unauthorized). Reset it on the Bot page of the Developer Portal "
            "and set DISCORD_TOKEN to the new one."
        ) from e
    except discord.PrivilegedIntentsRequired as e:
        raise CablebotError(CLOSE_CODES[4014]) from e
    except discord.ConnectionClosed as e:
        raise CablebotError(CLOSE_CODES.get(e.code, f"Discord closed the connection (code {e.code}).")) from e
    except discord.GatewayNotFound as e:
        raise CablebotError("cannot reach Discord's gateway; check the network") from e
    except discord.HTTPException as e:
        raise CablebotError(f"Discord answered {e.status} at start-up ({e.text or e}); try again later") from e
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        where = settings.discord_api_base or "discord.com"
        raise CablebotError(
            f"cannot reach Discord at {where} ({type(e).__name__}: {e}); check the network, DNS, proxy or "
            "firewall, and the system clock and certificates if TLS failed"
        ) from e
    return 0
