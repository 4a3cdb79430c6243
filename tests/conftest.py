"""Shared fixtures: a fake embedder for fast unit tests, the real model for end-to-end ones."""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from cablebot.config import BUNDLED_CORPUS, Settings

REPO = Path(__file__).resolve().parent.parent
os.environ["HF_HUB_OFFLINE"] = "1"
# A fresh cache per test run: the ONNX export from the bundled weights is exercised, not assumed. It holds
# about 200 MB of models, so it goes when the run ends.
os.environ["CABLEBOT_CACHE"] = tempfile.mkdtemp(prefix="cablebot-cache-")
atexit.register(shutil.rmtree, os.environ["CABLEBOT_CACHE"], ignore_errors=True)


class FakeEmbedder:
    """Hashes words into a unit vector: deterministic, fast, and similar texts get similar vectors."""

    name = "fake-hash"
    dim = 64

    def __init__(self) -> None:
        self.embedded: list[str] = []
        self.calls: list[int] = []  # how many texts each embed_documents call was given

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for word in text.lower().split():
            v[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        n = np.linalg.norm(v)
        return v / n if n else v

    def embed_query(self, text: str) -> np.ndarray:
        return self._vec(text)

    def embed_documents(self, texts, batch_size=64, progress=None):
        self.embedded.extend(texts)
        self.calls.append(len(texts))
        if progress:
            progress(len(texts))
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def seed_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings pointing at a fresh index of the bundled article, built once for the session."""
    from cablebot.core import build

    settings = Settings(index_dir=tmp_path_factory.mktemp("seed") / "index", corpus_paths=(BUNDLED_CORPUS,))
    build(settings, warn=lambda m: None)
    return settings


@pytest.fixture(scope="session")
def seed_bot(seed_settings: Settings):
    from cablebot.core import Cablebot

    return Cablebot(seed_settings, warn=lambda m: None)


def run_cli(
    *args: str, stdin: str | None = None, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `cablebot` in a new process, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "cablebot.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=full_env,
        timeout=300,
    )


@pytest.fixture
def index_copy(seed_bot, seed_settings: Settings, tmp_path: Path) -> Path:
    """A copy of the built seed index that a test may damage."""
    dest = tmp_path / "index"
    shutil.copytree(seed_settings.index_dir, dest)
    return dest
