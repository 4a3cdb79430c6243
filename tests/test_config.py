from pathlib import Path

import pytest

from cablebot.config import BUNDLED_CORPUS, load_settings
from cablebot.errors import CablebotError


def test_defaults_file_env_and_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CABLEBOT_CONFIG", raising=False)
    assert load_settings().corpus_paths == (BUNDLED_CORPUS,)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[index]\ndir = "idx"\n[answer]\nk = 3\n[corpus]\npaths = ["docs"]\n', encoding="utf-8")
    s = load_settings(cfg)
    assert s.index_dir == tmp_path / "idx" and s.answer_k == 3 and s.corpus_paths == (tmp_path / "docs",)
    monkeypatch.setenv("CABLEBOT_ANSWER_K", "11")
    monkeypatch.setenv("CABLEBOT_ANSWER_MAX_CHARS", "300")
    s = load_settings(cfg, index_dir=tmp_path / "other")
    assert s.answer_k == 11 and s.answer_max_chars == 300 and s.index_dir == tmp_path / "other"


def test_repo_config_lists_every_setting() -> None:
    repo = Path(__file__).resolve().parent.parent
    s = load_settings(repo / "config.toml")
    assert s.corpus_paths == (BUNDLED_CORPUS.resolve(),)
    assert s.index_dir == repo / "index"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[answer]\nk = 'many'\n", "bad value for answer_k"),
        ("[answer]\nkk = 1\n", "unknown setting"),
        ("not toml [", "cannot read config"),
        ("[answer]\nk = -3\n", r"bad value for answer_k: -3 \(must be above 0\)$"),
        ("[answer]\nmax_chars = 0\n", r"bad value for answer_max_chars: 0 \(must be above 0\)$"),
        ("[discord]\ncooldown = -1.5\n", r"bad value for discord_cooldown: -1.5 \(must be 0 or more\)$"),
        ("[discord]\nthreads = 'maybe'\n", r"bad value for discord_threads: 'maybe' \(true or false\)$"),
        ("[answer]\nk = true\n", r"bad value for answer_k: True$"),
        ("[feedback]\npath = 5\n", r"bad value for feedback_path: 5$"),
        (
            "[chunking]\ntokens = 50\noverlap = 50\n",
            r"^chunking overlap \(50\) must be below chunking tokens \(50\)$",
        ),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text, encoding="utf-8")
    with pytest.raises(CablebotError, match=message):
        load_settings(cfg)
