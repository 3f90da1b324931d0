"""The inference runtime: a sentence encoder (BERT, as sentence-transformers saves it) run by
lutmul's C++ runtime, every linear layer a lutmul operator.

    from lutmul.runtime import load_encoder
    encoder = load_encoder("path/to/model")       # or None: the packaged all-MiniLM-L6-v2
    vectors = encoder.embed(["A sentence.", "Another one."])   # float32 (2, H)

    compiled = compile(encoder, calibration=sentences, min_cosine=0.995)   # per-layer operators
    compiled.save("model.lutmul"); load("model.lutmul")                   # one file, no folder

Needs the ``runtime`` extra (``pip install 'lutmul[runtime]'``: tokenizers, tqdm). The
command line is ``lutmul embed`` / ``lutmul info`` (:mod:`lutmul.runtime.cli`).
"""

from .batching import DEFAULT_MAX_BATCH_TOKENS
from .candidates import Candidate, default_candidates
from .compile import compile
from .encoder import PACKAGED_MODEL, Encoder, load, load_encoder, packaged_model_path

__all__ = ["load_encoder", "load", "compile", "Candidate", "default_candidates", "Encoder", "PACKAGED_MODEL",
           "packaged_model_path", "DEFAULT_MAX_BATCH_TOKENS"]
