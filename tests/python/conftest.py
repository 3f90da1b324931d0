import numpy as np
import pytest


def structured_rows(n, d, rank=6, noise=0.1, seed=0):
    """Low-rank rows plus noise: MADDNESS needs structure, Gaussian noise flatters no one."""
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((rank, d))
    z = rng.standard_normal((n, rank)) / np.arange(1, rank + 1)
    return (z @ factors + noise * rng.standard_normal((n, d))).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    a = structured_rows(1800, 48, seed=1)
    b = np.random.default_rng(2).standard_normal((48, 7)).astype(np.float32)
    bias = np.linspace(-1, 1, 7).astype(np.float32)
    return a[:1500], a[1500:], b, bias
