"""lutmul.distributed.Embedder in Ray Data's map_batches, on the three-node cluster: with
preserve_order the rows equal embed_job's, row for row."""

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="lutmul.distributed needs Ray: pip install '.[distributed]'")
pytest.importorskip("ray.data", reason="the Embedder needs Ray Data: pip install '.[distributed]'")
pytest.importorskip("tokenizers", reason="the runtime needs tokenizers: pip install '.[runtime]'")

from lutmul.bench.products import english_sentences  # noqa: E402
from lutmul.distributed import Embedder, embed_job  # noqa: E402

SENTENCES = 1500


@pytest.fixture(scope="module")
def sentences(packaged_model):
    everything = english_sentences()
    picked = np.random.default_rng(7).choice(len(everything), SENTENCES, replace=False)
    return [everything[i] for i in picked]


def test_map_batches_with_preserve_order_equals_the_job(ray_cluster, sentences):
    context = ray.data.DataContext.get_current()
    saved = context.execution_options.preserve_order
    context.execution_options.preserve_order = True
    try:
        dataset = ray.data.from_items([{"text": s} for s in sentences], override_num_blocks=12)
        embedded = dataset.map_batches(Embedder, fn_constructor_kwargs={"model": "all-MiniLM-L6-v2"},
                                       concurrency=2, num_cpus=1, batch_size=100)
        batches = list(embedded.iter_batches(batch_size=None, batch_format="numpy"))
    finally:
        context.execution_options.preserve_order = saved
    texts = np.concatenate([batch["text"] for batch in batches]).tolist()
    rows = np.concatenate([batch["embedding"] for batch in batches])
    assert texts == sentences
    job = embed_job(None, sentences, None, workers=2, shard_size=100, progress=False)
    assert rows.dtype == np.float32 and np.array_equal(rows, job.embeddings)


def test_embedder_called_directly_and_its_errors(packaged_model):
    embedder = Embedder(column="sentence")
    batch = {"sentence": np.array(["A cat.", "A dog."], dtype=object), "id": np.array([4, 9])}
    out = embedder(batch)
    assert out["embedding"].shape == (2, 384) and out["id"].tolist() == [4, 9]
    with pytest.raises(KeyError, match="no column 'sentence'"):
        embedder({"text": np.array(["x"], dtype=object)})
    with pytest.raises(TypeError, match=r"sentences\[1\] must be str"):
        embedder({"sentence": np.array(["x", 3], dtype=object)})
