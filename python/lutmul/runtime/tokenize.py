"""Token ids from a model folder's ``tokenizer.json``, offline, through the ``tokenizers`` package."""

from __future__ import annotations

import os
from typing import List, Sequence

import numpy as np

EXTRA_HINT = "pip install 'lutmul[runtime]' (or: pip install tokenizers)"


def import_tokenizers():
    """The ``tokenizers`` module; ImportError naming the extra that installs it."""
    try:
        import tokenizers  # the runtime extra: lutmul itself imports without it
    except ImportError as error:
        raise ImportError(f"lutmul.runtime needs the tokenizers package: {EXTRA_HINT}") from error
    return tokenizers


class SentenceTokenizer:
    """``tokenizer.json`` read once, truncating at ``max_length`` tokens ([CLS] and [SEP]
    included), no padding (batches are ragged)."""

    def __init__(self, path: str, max_length: int):
        tokenizers = import_tokenizers()
        if not os.path.isfile(path):
            raise ValueError(f"{path}: no such file (the model folder needs its tokenizer.json)")
        try:
            tokenizer = tokenizers.Tokenizer.from_file(path)
        except Exception as error:  # tokenizers raises its own Exception subclass for a bad file
            raise ValueError(f"{path}: not a tokenizer file the tokenizers package reads: {error}") from error
        self._setup(tokenizer, max_length, path)

    @classmethod
    def from_json(cls, text: str, max_length: int, origin: str) -> "SentenceTokenizer":
        """The tokenizer of a ``tokenizer.json`` text (as stored in an encoder file); ``origin``
        names where it came from in messages."""
        tokenizers = import_tokenizers()
        try:
            tokenizer = tokenizers.Tokenizer.from_str(text)
        except Exception as error:
            raise ValueError(f"{origin}: its tokenizer is not one the tokenizers package reads: {error}") from error
        self = cls.__new__(cls)
        self._setup(tokenizer, max_length, origin)
        return self

    def _setup(self, tokenizer, max_length: int, path: str) -> None:
        # The file's own settings may pad to a fixed length or truncate elsewhere; set both
        # once here, never per call, so concurrent encodes share an unchanging tokenizer.
        self._tokenizer = tokenizer
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=int(max_length))
        self.max_length = int(max_length)
        self.path = path

    def to_json(self) -> str:
        """The tokenizer as ``tokenizer.json`` text (what an encoder file stores)."""
        return self._tokenizer.to_str()

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, sentences: Sequence[str]) -> List[np.ndarray]:
        """One int32 array of token ids per sentence."""
        if not sentences:
            return []
        encodings = self._tokenizer.encode_batch(list(sentences), add_special_tokens=True)
        return [np.asarray(encoding.ids, dtype=np.int32) for encoding in encodings]
