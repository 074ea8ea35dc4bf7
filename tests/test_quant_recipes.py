"""Quantize recipes (`quantize.recipes`, `variants[].quant`): per-variant quantizer knobs on a tiny trained
model, each a different artifact, recorded in the row's identity and facts."""

from pathlib import Path

import onnx
import pytest

from bench.build.compress import Compressor
from bench.build.pipeline import build_teacher
from bench.common.errors import BenchError
from bench.data.load import load_task_data
from bench.plan import make_plan
from bench.spec.suite import load_suite
from bench.store.artifacts import ArtifactStore

QUERY_L0 = "/bert/encoder/layer.0/attention/self/query/MatMul"
RECIPES = f"""quantize:
  calibration_samples: 40
  recipes:
    keep-query0: {{nodes_to_exclude: ["{QUERY_L0}"]}}
    static-keep-query0: {{nodes_to_exclude: ["{QUERY_L0}"], activation_type: u8}}
    same-as-default: {{per_channel: false}}
    ghost: {{nodes_to_exclude: [no/such/node]}}
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from conftest import FIXTURE_DATA, TINY_SUITE

    tmp = tmp_path_factory.mktemp("recipes")
    path = tmp / "suite.yaml"
    path.write_text(TINY_SUITE.format(data=FIXTURE_DATA / "sst2", n_train=160, n_eval=64) + RECIPES)
    suite = load_suite(path)
    data = load_task_data(suite.data, suite.task, suite.seed)
    store = ArtifactStore(tmp / "artifacts")
    teacher = build_teacher(suite, data, store, suite.seed)
    return suite, Compressor(suite, data, store), teacher


def _nodes(artifact) -> dict[str, str]:
    return {n.name: n.op_type for n in onnx.load(str(artifact.path / "model.onnx")).graph.node}


def test_recipes_expand_into_variants_on_onnx_int8_only(setup):
    suite, *_ = setup
    lines = [{"model": "teacher", "format": ["onnx", "pytorch"], "precision": ["fp32", "int8-dynamic"],
              "quant": ["default", "per-channel", "keep-query0"]}]
    plan = make_plan(suite.model_copy(update={"variants": [type(suite.variants[0])(**lines[0])]}))
    ids = sorted(v.id for v in plan.variants)
    assert ids == ["teacher-onnx-fp32-cpu-t1", "teacher-onnx-int8-dynamic+keep-query0-cpu-t1",
                   "teacher-onnx-int8-dynamic+per-channel-cpu-t1", "teacher-onnx-int8-dynamic-cpu-t1",
                   "teacher-pytorch-fp32-cpu-t1", "teacher-pytorch-int8-dynamic-cpu-t1"]


def test_unknown_recipe_is_a_suite_error_naming_the_field(write_suite):
    from conftest import FIXTURE_DATA, TINY_SUITE

    text = TINY_SUITE.format(data=FIXTURE_DATA / "sst2", n_train=16, n_eval=8).replace(
        "precision: fp32, device: cpu}", "precision: int8-dynamic, quant: [nope]}")
    with pytest.raises(BenchError, match=r"variants\[0\]\.quant: unknown recipe 'nope'"):
        load_suite(write_suite(text))


def test_excluded_node_stays_float_and_the_artifact_differs(setup):
    _, comp, teacher = setup
    default, kept = comp.onnx_int8_dynamic(teacher, "plain"), comp.onnx_int8_dynamic(teacher, "plain", "keep-query0")
    assert default.key != kept.key
    assert QUERY_L0 not in _nodes(default) and _nodes(kept)[QUERY_L0] == "MatMul"
    assert kept.info["nodes_excluded"] == [QUERY_L0]
    assert kept.info["int8_matmul_ops"] == default.info["int8_matmul_ops"] - 1


def test_a_recipe_with_the_default_settings_is_the_same_artifact(setup):
    _, comp, teacher = setup
    assert comp.onnx_int8_dynamic(teacher, "plain", "same-as-default").key == comp.onnx_int8_dynamic(teacher, "plain").key


def test_qoperator_static_writes_integer_operators(setup):
    _, comp, teacher = setup
    qdq, qop = comp.onnx_int8_static(teacher, "plain", "minmax"), comp.onnx_int8_static(teacher, "plain", "minmax",
                                                                                        recipe="qoperator")
    qdq_ops, qop_ops = set(_nodes(qdq).values()), list(_nodes(qop).values())
    assert "QLinearMatMul" not in qdq_ops and "DequantizeLinear" in qdq_ops  # QDQ: ORT fuses at load
    assert qop_ops.count("QLinearMatMul") == qop.info["int8_matmul_ops"] == 2 * 8
    assert qop.info["quant_format"] == "qoperator" and qop.info["parity_label_agreement"] >= 0.85


def test_a_node_the_graph_lacks_is_refused_by_name(setup):
    _, comp, teacher = setup
    with pytest.raises(BenchError, match=r"quantize.recipes.ghost.nodes_to_exclude: .*no node 'no/such/node'"):
        comp.onnx_int8_dynamic(teacher, "plain", "ghost")


def test_a_static_node_kept_in_float_reads_float_input_beside_quantized_siblings(setup):
    # Query, key and value read one tensor. With a shared Q/DQ pair ORT would feed the float query MatMul
    # the dequantized tensor too; bench gives each quantized reader its own pair.
    _, comp, teacher = setup
    graph = onnx.load(str(comp.onnx_int8_static(teacher, "plain", "minmax", recipe="static-keep-query0").path
                          / "model.onnx")).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    by_name = {node.name: node for node in graph.node}
    query, key = by_name[QUERY_L0], by_name[QUERY_L0.replace("query", "key")]
    assert producer.get(query.input[0]) != "DequantizeLinear" and producer.get(key.input[0]) == "DequantizeLinear"
    assert producer.get(query.input[1]) != "DequantizeLinear"  # its weight is float too


def test_built_in_recipe_names_cannot_be_redefined(write_suite):
    from conftest import FIXTURE_DATA, TINY_SUITE

    text = TINY_SUITE.format(data=FIXTURE_DATA / "sst2", n_train=16, n_eval=8)
    with pytest.raises(BenchError, match=r"quantize.recipes: 'per-channel' is a built-in recipe"):
        load_suite(write_suite(text + "quantize: {recipes: {per-channel: {per_channel: false}}}\n"))


def test_the_quantizers_write_nothing_into_the_cache_folder_they_read(setup, monkeypatch, tmp_path):
    # ORT's quantizer writes `<model>-inferred.onnx` beside its input and deletes it; in the cache folder two
    # quantizations of one base graph at once (a cluster's tasks) deleted each other's copy.
    from transformers import AutoTokenizer

    from bench.backends.onnx.quantize import quantize_int8_dynamic, quantize_int8_static

    _, comp, teacher = setup
    base = comp.base_graph(teacher, "plain").path
    before = sorted(p.name for p in base.iterdir())
    written = []
    real = onnx.shape_inference.infer_shapes_path
    monkeypatch.setattr(onnx.shape_inference, "infer_shapes_path",
                        lambda src, out, *a, **k: (written.append(Path(out).parent), real(src, out, *a, **k))[1])
    (tmp_path / "dyn").mkdir()
    (tmp_path / "static").mkdir()
    quantize_int8_dynamic(base / "model.onnx", tmp_path / "dyn" / "model.onnx", per_channel=False, reduce_range=True)
    quantize_int8_static(base / "model.onnx", tmp_path / "static" / "model.onnx",
                         AutoTokenizer.from_pretrained(base), comp.calibration_texts(), comp.max_length, "minmax",
                         per_channel=False, reduce_range=False, percentile=99.99)
    assert written and base.resolve() not in {w.resolve() for w in written}
    assert sorted(p.name for p in base.iterdir()) == before
    assert (tmp_path / "dyn" / "model.onnx").exists() and (tmp_path / "static" / "model.onnx").exists()
