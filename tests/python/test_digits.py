"""Real data that a package ships: scikit-learn's digits. A logistic-regression classifier's
product X·W is replaced by MADDNESS trained on the training rows, and compared with exact
math and with plain product quantisation (k-means per subspace) at the same code size."""
import numpy as np
import pytest

import lutmul

sklearn = pytest.importorskip("sklearn")
from lutmul.bench.pq import ProductQuantizer  # noqa: E402  (plain PQ, shared with the harness)
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

CODEBOOKS = [2, 4, 8, 16, 32]


@pytest.fixture(scope="module")
def digits():
    x, labels = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, labels, test_size=0.25, random_state=0, stratify=labels)
    clf = LogisticRegression(max_iter=5000).fit(x_train, y_train)
    w = clf.coef_.T.astype(np.float32)
    b = clf.intercept_.astype(np.float32)
    return x_train, x_test, y_test, w, b


def test_digits_accuracy_and_error(digits):
    x_train, x_test, y_test, w, b = digits
    exact = x_test @ w + b
    exact_accuracy = float(np.mean(exact.argmax(1) == y_test))
    rows = []
    for c in CODEBOOKS:
        model = lutmul.Maddness(ncodebooks=c).fit(x_train, w, b)
        approx = model(x_test)
        pq = ProductQuantizer(c).fit(x_train, w, b).forward(x_test)
        rows.append((c, float(np.mean(approx.argmax(1) == y_test)), np.linalg.norm(approx - exact) / np.linalg.norm(exact),
                     float(np.mean(pq.argmax(1) == y_test)), np.linalg.norm(pq - exact) / np.linalg.norm(exact)))
    print(f"\nexact accuracy {exact_accuracy:.4f}")
    print(" C  maddness_acc  maddness_err  pq_acc  pq_err")
    for c, acc, err, pq_acc, pq_err in rows:
        print(f"{c:2d}  {acc:12.4f}  {err:12.4f}  {pq_acc:6.4f}  {pq_err:6.4f}")
    errors = [r[2] for r in rows]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    accuracy = {c: r[1] for c, r in zip(CODEBOOKS, rows)}
    # Measured: exact 0.960 (432 of 450); MADDNESS 0.944 (425) at C = 16 and 0.951 at C = 32
    # (PQ: 0.944, 0.944). The bar at C = 16 needs 423. See docs/quality.md.
    assert accuracy[16] >= exact_accuracy - 0.02, accuracy
    assert accuracy[32] >= exact_accuracy - 0.02, accuracy
    # The error itself, a smoother signal than accuracy: 0.219 at C = 16 (0.241 when each tree
    # was learned on the residual of the codebooks before it).
    assert errors[CODEBOOKS.index(16)] < 0.23, errors
