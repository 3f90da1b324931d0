"""The package's surface: one builder, one loader, one version, the C++ settings bound as
structs and enums, the 0.2 spellings still working with a DeprecationWarning, and modules
that import one way (no cycles)."""
import ast
import pathlib
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

import lutmul

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = pathlib.Path(lutmul.__file__).resolve().parent


@pytest.fixture(scope="module")
def layer():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((32, 24)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    X = rng.standard_normal((64, 32)).astype(np.float32)
    return W, b, X


# ---- one builder ----

BUILDS = {
    "dense": ({}, lambda W, b, X: lutmul.DenseLinear.from_dense(W, b)),
    "bf16": ({}, lambda W, b, X: lutmul.Bf16Linear.from_dense(W, b)),
    "int8": ({"activations": "static", "percentile": 99.0, "calibration": True},
             lambda W, b, X: lutmul.Int8Linear.from_dense(W, b, activations="static", percentile=99.0, calibration=X)),
    "sparse": ({"sparsity": 0.75}, lambda W, b, X: lutmul.SparseLinear.from_dense(W, b, sparsity=0.75)),
    "sparse24": ({"calibration": True}, lambda W, b, X: lutmul.Sparse24Linear.from_dense(W, b, calibration=X)),
    "channel_pruned": ({"fraction": 0.25, "channels": "inputs"},
                       lambda W, b, X: lutmul.ChannelPrunedLinear.from_dense(W, b, fraction=0.25, channels="inputs")),
    "maddness": ({"ncodebooks": 8, "calibration": True},
                 lambda W, b, X: lutmul.MaddnessLinear.from_dense(W, b, calibration=X, ncodebooks=8)),
    "low_rank": ({"rank": 5}, lambda W, b, X: lutmul.LowRankLinear.from_dense(W, b, rank=5)),
    "lora": ({"base": "int8"}, lambda W, b, X: lutmul.LoraLinear(lutmul.Int8Linear.from_dense(W, b))),
}


def test_kinds_are_the_cpp_kind_strings():
    assert set(lutmul.kinds()) == set(BUILDS)


@pytest.mark.parametrize("kind", sorted(BUILDS))
def test_build_equals_from_dense(kind, layer):
    W, b, X = layer
    params, reference = BUILDS[kind]
    params = dict(params)
    calibration = X if params.pop("calibration", False) else None
    op = lutmul.build(kind, W, b, calibration=calibration, **params)
    expected = reference(W, b, X)
    assert type(op) is type(expected) and op.kind == kind and isinstance(op, lutmul.Operator)
    np.testing.assert_array_equal(op(X), expected(X))


def test_build_names_what_it_does_not_know(layer):
    W, b, X = layer
    with pytest.raises(ValueError, match=r"unknown operator kind 'int4'.*'dense'"):
        lutmul.build("int4", W, b)
    with pytest.raises(TypeError, match=r"'sparse' takes no setting 'rank'.*'sparsity'"):
        lutmul.build("sparse", W, b, rank=3)
    with pytest.raises(TypeError, match="'dense' takes no calibration rows"):
        lutmul.build("dense", W, b, calibration=X)
    with pytest.raises(TypeError, match=r"'dense' takes no setting 'sparsity'"):
        lutmul.build("lora", W, b, base="dense", sparsity=0.5)  # the base's settings are checked too
    with pytest.raises(ValueError, match="calibration"):
        lutmul.build("int8", W, b, activations="static")  # the family's own checks still run


def test_every_kind_refuses_direct_construction(layer):
    W, b, _ = layer
    for cls in (lutmul.Int8Linear, lutmul.SparseLinear, lutmul.Sparse24Linear, lutmul.ChannelPrunedLinear,
                lutmul.MaddnessLinear, lutmul.LowRankLinear):
        with pytest.raises(TypeError, match="from_dense"):
            cls(W, b)


# ---- one loader ----

def test_load_reads_models_and_operators(layer, tmp_path):
    W, b, X = layer
    model = lutmul.Maddness(ncodebooks=8).fit(X, W, b)
    model.save(tmp_path / "model.lutmul")
    back = lutmul.load(tmp_path / "model.lutmul")
    assert isinstance(back, lutmul.Maddness)  # what 0.2 code expects of lutmul.load
    np.testing.assert_array_equal(back(X), model(X))
    assert back.encode(X).shape == (64, 8) and back.accumulation == "exact"
    op = lutmul.LowRankLinear.from_dense(W, b, rank=4)
    op.save(tmp_path / "op.lutmul")
    again = lutmul.load(tmp_path / "op.lutmul")
    assert isinstance(again, lutmul.LowRankLinear)
    np.testing.assert_array_equal(again(X), op(X))
    assert (tmp_path / "op.lutmul").read_bytes()[:8] == b"LUTMULOP"
    assert (tmp_path / "model.lutmul").read_bytes()[:8] == b"LUTMULOP"  # one file format since 0.3
    with pytest.raises(ValueError):
        lutmul.load(tmp_path / "missing.lutmul")


# ---- one version ----

def cmake_version() -> str:
    text = (ROOT / "CMakeLists.txt").read_text()
    return re.search(r"project\(\s*lutmul\s+VERSION\s+([0-9.]+)", text).group(1)


def test_version_is_the_cmake_project_version():
    assert lutmul.__version__ == cmake_version()
    assert lutmul._core.__version__ == cmake_version()  # the C++ core's version.h agrees


# ---- settings bound as the C++ structs and enums ----

def test_configs_are_the_cpp_structs():
    c = lutmul.MaddnessConfig(ncodebooks=8, accumulation=lutmul.Accumulation.averaged)
    assert c.ncodebooks == 8 and c.accumulation == lutmul.Accumulation.averaged and c.tables == lutmul.TableMode.uint8
    assert c.prototypes == lutmul.PrototypeMethod.ridge and c.ridge_lambdas == [] and c.seed == 0
    assert "ncodebooks=8" in repr(c)
    assert lutmul.Int8Config().activations == lutmul.ActivationScaling.dynamic_per_row
    assert lutmul.SparseConfig(sparsity=0.5).kept_weights == -1
    assert lutmul.ChannelPruningConfig().channels == lutmul.PrunedChannels.outputs
    assert lutmul.LowRankConfig(rule=lutmul.RankRule.energy).rule == lutmul.RankRule.energy
    with pytest.raises(TypeError):
        lutmul.Int8Config(activations="static")  # an enum, not a string
    with pytest.raises(TypeError):
        lutmul.LowRankConfig(lutmul.RankRule.fixed)  # keywords only
    m = lutmul.Maddness(ncodebooks=4, accumulation="averaged", float_tables=True)
    assert m.config.accumulation == lutmul.Accumulation.averaged and m.config.tables == lutmul.TableMode.float32
    assert pickle.loads(pickle.dumps(m)).config.tables == lutmul.TableMode.float32


def test_enums_are_accepted_where_strings_are(layer):
    W, b, X = layer
    by_enum = lutmul.ChannelPrunedLinear.from_dense(W, b, channels=lutmul.PrunedChannels.inputs)
    assert by_enum.kept_inputs == lutmul.ChannelPrunedLinear.from_dense(W, b, channels="inputs").kept_inputs
    static = lutmul.Int8Linear.from_dense(W, b, activations=lutmul.ActivationScaling.static_per_tensor, calibration=X)
    assert static.static_activation_scale > 0


# ---- the 0.2 spellings: still working, with a DeprecationWarning ----

def test_dense_constructor_is_deprecated(layer):
    W, b, X = layer
    with pytest.warns(DeprecationWarning, match=r"DenseLinear\.from_dense"):
        op = lutmul.DenseLinear(W, b)
    np.testing.assert_array_equal(op(X), lutmul.DenseLinear.from_dense(W, b)(X))
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="bias must have shape"):
        lutmul.DenseLinear(W, np.zeros(3))


def test_two_of_four_through_sparse_linear_is_deprecated_and_says_what_it_returns(layer):
    W, b, X = layer
    with pytest.warns(DeprecationWarning, match=r"returns a Sparse24Linear.*Sparse24Linear\.from_dense"):
        op = lutmul.SparseLinear.from_dense(W, b, pattern="2:4", calibration=X)
    assert type(op) is lutmul.Sparse24Linear and op.pattern == "2:4" and op.kind == "sparse24"
    np.testing.assert_array_equal(op(X), lutmul.Sparse24Linear.from_dense(W, b, calibration=X)(X))
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="sparsity 0.5"):
        lutmul.SparseLinear.from_dense(W, pattern="2:4", sparsity=0.9)


def test_load_operator_is_a_deprecated_alias_of_load(layer, tmp_path):
    W, b, X = layer
    op = lutmul.Int8Linear.from_dense(W, b)
    op.save(tmp_path / "op.lutmul")
    with pytest.warns(DeprecationWarning, match=r"lutmul\.load\(path\)"):
        back = lutmul.load_operator(tmp_path / "op.lutmul")
    assert type(back) is lutmul.Int8Linear
    np.testing.assert_array_equal(back(X), op(X))
    (tmp_path / "junk.lutmul").write_bytes(b"not an operator" * 10)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="not a lutmul operator file"):
        lutmul.load_operator(tmp_path / "junk.lutmul")


def test_old_module_paths_are_deprecated():
    import lutmul.lowrank
    import lutmul.operators

    with pytest.warns(DeprecationWarning, match=r"lutmul\.operators\.DenseLinear"):
        assert lutmul.operators.DenseLinear is lutmul.DenseLinear
    with pytest.warns(DeprecationWarning, match=r"lutmul\.lowrank\.LoraLinear"):
        assert lutmul.lowrank.LoraLinear is lutmul.LoraLinear
    with pytest.warns(DeprecationWarning):
        assert lutmul.lowrank.read_safetensors is lutmul.read_safetensors
    with pytest.raises(AttributeError):
        lutmul.operators.NoSuchThing  # noqa: B018


def test_pickles_of_0_2_operators_still_load(layer):
    W, b, X = layer
    op = lutmul.Int8Linear.from_dense(W, b)
    from lutmul.operators import _from_bytes  # what a 0.2 pickle names

    np.testing.assert_array_equal(_from_bytes(op.serialize())(X), op(X))


# ---- modules import one way ----

def test_every_module_imports_first_in_a_fresh_interpreter():
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__", "demo"))
    code = "import importlib, sys; importlib.import_module('lutmul.' + sys.argv[1])"
    for name in modules:
        done = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code, name],
                              capture_output=True, text=True)
        assert done.returncode == 0, f"lutmul.{name}: {done.stderr}"


def test_no_function_level_imports_of_the_package():
    """Imports inside functions hid import cycles in 0.2; the modules now import at the top."""
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and (inner.level > 0 or (inner.module or "").startswith("lutmul")):
                        pytest.fail(f"{path.name}:{inner.lineno}: {node.name} imports from the package")
