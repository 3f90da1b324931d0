"""Ragged batches: sentences checked, sorted by token count, cut into batches, results put
back in input order.

The C++ encoder takes a ragged batch (every sequence's ids back to back, one length per
sequence, no padding), so sorting by length does not save padding here; it keeps each
batch's attention work even across threads and makes the token limit of a batch cut
evenly. The token limit bounds the workspace (activations grow with tokens, not sentences).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import List, Tuple

import numpy as np

# Tokens per batch at most. The C++ workspace grows with a batch's tokens (about 9 KB a
# token for all-MiniLM-L6-v2, attention scores aside): 128 sentences of 225 tokens grew
# resident memory by 156 MB in batches of 16,384 tokens and by 40 MB at 4,096, which still
# makes products large enough for sgemm (4,096 × 384 rows).
DEFAULT_MAX_BATCH_TOKENS = 4096


def positive_int(value, name: str) -> int:
    """``value`` as an int; ``ValueError`` naming ``name`` unless it is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _is_sequence(value) -> bool:
    """A list, tuple, or anything ordered and sized such as a pandas Series (not a dict or set)."""
    if isinstance(value, Sequence):
        return True
    return not isinstance(value, Mapping) and hasattr(value, "__len__") and hasattr(value, "__getitem__") \
        and hasattr(value, "__iter__")


def check_sentences(sentences, start: int = 0) -> List[str]:
    """``sentences`` as a list of str; ``TypeError`` for a bare string, a non-sequence or a
    non-string element (naming its index, counted from ``start``)."""
    if isinstance(sentences, (str, bytes)):
        # A string is a sequence of characters; embedding each character is never meant.
        raise TypeError(f"sentences must be a sequence of str, got a single {type(sentences).__name__}; "
                        "wrap it in a list: [sentence]")
    if isinstance(sentences, np.ndarray):
        sentences = sentences.tolist()
    elif not _is_sequence(sentences):
        hint = "; embed_iter takes any iterable" if isinstance(sentences, Iterable) else ""
        raise TypeError(f"sentences must be a sequence of str (list, tuple), got {type(sentences).__name__}{hint}")
    checked = list(sentences)
    for i, sentence in enumerate(checked):
        if not isinstance(sentence, str):
            raise TypeError(f"sentences[{start + i}] must be str, got {type(sentence).__name__}")
    return checked


def chunks_of(sentences: Iterable, size: int) -> Iterator[Tuple[int, List[str]]]:
    """``(index of the first, list of up to size checked sentences)`` from any iterable of str;
    a bare string or a non-iterable raises here, at the call, the elements as they are read."""
    if isinstance(sentences, (str, bytes)):
        check_sentences(sentences)  # raises
    if not isinstance(sentences, Iterable):
        raise TypeError(f"sentences must be an iterable of str, got {type(sentences).__name__}")
    return _chunks(iter(sentences), size)


def _chunks(sentences: Iterator, size: int) -> Iterator[Tuple[int, List[str]]]:
    chunk: list = []
    start = 0
    for sentence in sentences:
        chunk.append(sentence)
        if len(chunk) == size:
            yield start, check_sentences(chunk, start)
            start += size
            chunk = []
    if chunk:
        yield start, check_sentences(chunk, start)


def plan_batches(lengths: np.ndarray, batch_size: int,
                 max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS) -> List[np.ndarray]:
    """Indices of the sequences in each batch: sorted by length (longest first, so the largest
    workspace is taken once, at the start), at most ``batch_size`` sequences and at most
    ``max_batch_tokens`` tokens per batch (a longer sequence goes alone)."""
    batch_size = positive_int(batch_size, "batch_size")
    max_batch_tokens = positive_int(max_batch_tokens, "max_batch_tokens")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches = []
    begin = 0
    while begin < len(order):
        end, tokens = begin, 0
        while end < len(order) and end - begin < batch_size and \
                (end == begin or tokens + lengths[order[end]] <= max_batch_tokens):
            tokens += int(lengths[order[end]])
            end += 1
        batches.append(order[begin:end])
        begin = end
    return batches


def pack(token_ids: Sequence[np.ndarray], members: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The ragged batch of ``members``: (ids int32, all back to back; lengths int64)."""
    lengths = np.fromiter((len(token_ids[i]) for i in members), dtype=np.int64, count=len(members))
    ids = np.concatenate([token_ids[i] for i in members]).astype(np.int32, copy=False) if len(members) else \
        np.empty(0, dtype=np.int32)
    return ids, lengths
