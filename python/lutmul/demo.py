"""The lutmul demo on real data that scikit-learn ships: its handwritten digits.

A logistic-regression classifier is trained on 75% of the digits; its product X·W on the
held-out 25% is then computed exactly, by MADDNESS at several codebook counts, and by
plain product quantisation (k-means per subspace) for comparison. Prints accuracy,
relative error and time per product. Run: ``python -m lutmul.demo``; the full comparison of
every operator on more products is ``python -m lutmul.bench``.
"""

from __future__ import annotations

import time

import numpy as np

import lutmul
from lutmul.bench.pq import ProductQuantizer


def _median_seconds(fn, repeats: int = 15) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    try:
        from sklearn.datasets import load_digits
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit("the demo needs scikit-learn: pip install 'lutmul[test]'")

    x, labels = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, labels, test_size=0.25, random_state=0, stratify=labels)
    clf = LogisticRegression(max_iter=5000).fit(x_train, y_train)
    w = np.ascontiguousarray(clf.coef_.T, dtype=np.float32)
    b = clf.intercept_.astype(np.float32)
    # Time on a batch large enough to measure: the test rows repeated.
    batch = np.ascontiguousarray(np.tile(x_test, (40, 1)))

    exact = x_test @ w + b
    exact_time = _median_seconds(lambda: batch @ w + b)
    print(f"lutmul demo: scikit-learn digits, {x_train.shape[0]} training rows, {x_test.shape[0]} test rows, "
          f"D = {x.shape[1]}, M = {w.shape[1]} classes; kernels: {lutmul.isa()}, threads: {lutmul.num_threads()}")
    print(f"timing: median of 15 products of a {batch.shape[0]} x {batch.shape[1]} batch; exact = numpy (BLAS) x @ W + b\n")
    header = f"{'method':<22}{'accuracy':>9}{'rel. error':>12}{'time':>11}{'speed-up':>10}"
    print(header)
    print("-" * len(header))
    accuracy = float(np.mean(exact.argmax(1) == y_test))
    print(f"{'exact':<22}{accuracy:>9.4f}{0.0:>12.4f}{exact_time * 1e6:>9.0f}us{1.0:>9.2f}x")
    for c in (2, 4, 8, 16, 32):
        model = lutmul.Maddness(ncodebooks=c).fit(x_train, w, b)
        approx = model(x_test)
        t = _median_seconds(lambda: model(batch))
        err = np.linalg.norm(approx - exact) / np.linalg.norm(exact)
        acc = float(np.mean(approx.argmax(1) == y_test))
        print(f"{'maddness C=' + str(c):<22}{acc:>9.4f}{err:>12.4f}{t * 1e6:>9.0f}us{exact_time / t:>9.2f}x")
    for c in (4, 16):
        pq = ProductQuantizer(c).fit(x_train, w, b).forward(x_test)
        err = np.linalg.norm(pq - exact) / np.linalg.norm(exact)
        acc = float(np.mean(pq.argmax(1) == y_test))
        print(f"{'k-means PQ C=' + str(c):<22}{acc:>9.4f}{err:>12.4f}{'(not timed)':>21}")
    print("\nD = 64 is tiny: at this size the exact product is cheap; see docs/performance.md for the")
    print("speed-ups on the MADDNESS paper's shapes (N = 10 016, D = 512).")


if __name__ == "__main__":
    main()
