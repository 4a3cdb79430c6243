"""Settings: built-in defaults, then a TOML file, then CABLEBOT_* environment variables."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

from cablebot.errors import CablebotError

BUNDLED_CORPUS = Path(__file__).parent / "data" / "seed"


@dataclass(frozen=True)
class Settings:
    """Every tunable of cablebot; `config.toml` documents each one."""

    corpus_paths: tuple[Path, ...] = (BUNDLED_CORPUS,)
    index_dir: Path = Path("index")
    index_approximate_above: int = 200_000
    index_follow_links: bool = False
    index_max_file_mb: float = 10.0
    index_backend: str = "faiss"  # where sentence vectors live: "faiss" (files in index_dir) or "milvus"
    index_uri: str = ""  # the Milvus server ("http://host:19530"); empty: Milvus Lite inside index_dir
    embedding_model: str = "all-MiniLM-L6-v2"
    embedding_backend: str = "onnx"
    embedding_quantize: bool = True
    embedding_batch_size: int = 16
    chunking_tokens: int = 80
    chunking_overlap: int = 25
    answer_k: int = 8
    answer_max_chars: int = 400
    discord_token_file: str = ""
    discord_guild_id: int = 0
    discord_allowed_guilds: tuple[int, ...] = ()
    discord_allowed_channels: tuple[int, ...] = ()
    discord_cooldown: float = 10.0
    discord_max_concurrent: int = 2
    discord_threads: bool = True
    discord_api_base: str = ""
    discord_gateway_url: str = ""
    feedback_path: Path = Path("feedback.jsonl")

    def with_index(self, index_dir: str | Path | None) -> Settings:
        return self if index_dir is None else replace(self, index_dir=Path(index_dir))


_PATH_FIELDS = {"corpus_paths", "index_dir", "feedback_path"}
# Counts and sizes that mean nothing at zero or below (k = 0 would answer from no passage at all).
_POSITIVE = {
    "index_approximate_above", "index_max_file_mb", "embedding_batch_size", "chunking_tokens", "answer_k",
    "answer_max_chars", "discord_max_concurrent",
}  # fmt: skip
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


class _Meaningless(ValueError):
    """A value of the right type that no setting can mean; its message says what would do."""


def _coerce(name: str, value: object, base: Path, origin: str) -> object:
    """Convert a TOML or environment value to the type of the field it sets."""
    default = getattr(Settings, name)
    try:
        if name == "corpus_paths":
            items = [value] if isinstance(value, str) else list(value)  # type: ignore[call-overload]
            if not all(isinstance(p, str) for p in items):
                raise TypeError("paths are strings")
            return tuple((base / p).resolve() for p in items)
        if name in _PATH_FIELDS:
            if not isinstance(value, str):
                raise TypeError("a path is a string")
            return (base / value).resolve()
        if isinstance(default, tuple):  # lists of Discord ids
            items = value.replace(",", " ").split() if isinstance(value, str) else value
            return tuple(int(v) for v in items)  # type: ignore[union-attr]
        if name == "discord_token_file" and value:
            return str((base / str(value)).resolve())
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            if str(value).lower() not in _TRUE | _FALSE:
                raise _Meaningless("true or false")
            return str(value).lower() in _TRUE
        if isinstance(default, int | float):
            if isinstance(value, bool):  # TOML's true is no number, though Python would make it 1
                raise TypeError("a number")
            number = type(default)(value)  # type: ignore[arg-type]
            if name in _POSITIVE and number <= 0:
                raise _Meaningless("must be above 0")
            if number < 0:
                raise _Meaningless("must be 0 or more")
            return number
        if name == "index_backend" and value not in ("faiss", "milvus"):
            raise ValueError("expected faiss or milvus")
        return str(value)
    except (TypeError, ValueError) as e:
        why = f" ({e})" if isinstance(e, _Meaningless) else ""
        raise CablebotError(f"{origin}: bad value for {name}: {value!r}{why}") from e


def _find_config(explicit: str | Path | None) -> Path | None:
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise CablebotError(f"config file not found: {path}")
        return path
    env = os.environ.get("CABLEBOT_CONFIG")
    if env:
        return _find_config(env)
    local = Path("config.toml")
    return local if local.is_file() else None


def user_data() -> Path:
    """Where cablebot keeps what it makes when run outside a project: ~/.local/share/cablebot on Linux."""
    import platformdirs

    return platformdirs.user_data_path("cablebot")


def load_settings(config: str | Path | None = None, index_dir: str | Path | None = None) -> Settings:
    """Settings for one run: defaults < config file < CABLEBOT_* variables < --index."""
    names = {f.name for f in fields(Settings)}
    values: dict[str, object] = {}
    path = _find_config(config)
    if path is None:  # no project folder: keep the index and feedback in the user's data directory, not here
        values.update(index_dir=user_data() / "index", feedback_path=user_data() / "feedback.jsonl")
    else:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise CablebotError(f"cannot read config {path}: {e}") from e
        base = path.resolve().parent
        for section, table in data.items():
            if not isinstance(table, dict):
                raise CablebotError(f"{path}: [{section}] must be a table")
            for key, value in table.items():
                name = f"{section}_{key}"
                if name not in names:
                    raise CablebotError(f"{path}: unknown setting [{section}] {key}")
                values[name] = _coerce(name, value, base, str(path))
    for env_key, raw in os.environ.items():
        if env_key.startswith("CABLEBOT_") and env_key != "CABLEBOT_CONFIG":
            name = env_key.removeprefix("CABLEBOT_").lower()
            if name in names:
                value: object = raw.split(os.pathsep) if name == "corpus_paths" else raw
                values[name] = _coerce(name, value, Path.cwd(), env_key)
    settings = Settings(**values).with_index(index_dir)  # type: ignore[arg-type]
    overlap, tokens = settings.chunking_overlap, settings.chunking_tokens
    if overlap >= tokens:
        raise CablebotError(f"chunking overlap ({overlap}) must be below chunking tokens ({tokens})")
    return settings
