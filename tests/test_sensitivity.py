"""The sensitivity pass (bench/tune/node_ranking.py) on a tiny trained model: every node the INT8 graph quantizes is
ranked, costliest first, on held-out train examples; keeping the costliest in float changes exactly which
nodes are quantized; the ranking is cached."""

import json
import logging
import shutil

import onnx
import pytest

from bench.build.compress import Compressor
from bench.build.pipeline import build_teacher
from bench.data.load import load_task_data
from bench.schema.variant import Variant
from bench.spec.suite import QuantRecipe, load_suite
from bench.store.artifacts import ArtifactStore
from bench.tune.node_ranking import convert_for, quantized_nodes, rank_nodes


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from conftest import FIXTURE_DATA, TINY_SUITE

    tmp = tmp_path_factory.mktemp("sensitivity")
    path = tmp / "suite.yaml"
    path.write_text(TINY_SUITE.format(data=FIXTURE_DATA / "sst2", n_train=160, n_eval=64)
                    + "quantize: {calibration_samples: 40}\n")
    suite = load_suite(path)
    data = load_task_data(suite.data, suite.task, suite.seed)
    store = ArtifactStore(tmp / "artifacts")
    return suite, data, store, build_teacher(suite, data, store, suite.seed)


VARIANTS = [Variant("teacher", "onnx", "int8-dynamic", "cpu", 1, "plain"),
            Variant("teacher", "onnx", "int8-dynamic", "cpu", 1, "optimized"),
            Variant("teacher", "onnx", "int8-static", "cpu", 1, "plain", "minmax")]


def _int8(comp, teacher, v):
    if v.precision == "int8-dynamic":
        return comp.onnx_int8_dynamic(teacher, v.graph, v.quant)
    return comp.onnx_int8_static(teacher, v.graph, v.calibration, recipe=v.quant)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_every_quantized_node_is_ranked_costliest_first_and_the_ranking_is_cached(setup, variant, monkeypatch):
    suite, data, store, teacher = setup
    comp = Compressor(suite, data, store)
    int8 = _int8(comp, teacher, variant)
    base = comp.base_graph(teacher, variant.graph)
    ranking = rank_nodes(comp, teacher, variant, int8, samples=48)
    _, op_types = convert_for(comp, variant)  # the quantizer's own op types, not the ranking's
    quantized = quantized_nodes(base.path / "model.onnx", int8.path / "model.onnx", op_types)
    assert {n.node for n in ranking} == {name for name, _ in quantized} and len(ranking) >= 9
    # Counted independently, from the INT8 graph's integer operators: every quantized matmul is ranked,
    # except the pooler's and classifier's Gemms, which ORT's dynamic quantizer rewrites to new MatMuls.
    gemms = 2 if variant.precision == "int8-dynamic" else 0
    assert sum(n.op_type in ("MatMul", "Attention") for n in ranking) == int8.info["int8_matmul_ops"] - gemms
    assert [n.logit_mse for n in ranking] == sorted((n.logit_mse for n in ranking), reverse=True)
    assert ranking[0].logit_mse > 0 and all(n.flips is not None for n in ranking)
    # Cached: a second ranking quantizes nothing.
    monkeypatch.setattr("bench.tune.node_ranking.convert_for", lambda *a: pytest.fail("ranked again"))
    assert rank_nodes(comp, teacher, variant, int8, samples=48) == ranking


@pytest.mark.parametrize("variant", [VARIANTS[0], VARIANTS[2]], ids=lambda v: v.id)
def test_keeping_the_costliest_nodes_in_float_changes_exactly_which_nodes_are_quantized(setup, variant):
    suite, data, store, teacher = setup
    comp = Compressor(suite, data, store)
    int8 = _int8(comp, teacher, variant)
    top = [n.node for n in rank_nodes(comp, teacher, variant, int8, samples=48)[:2]]
    recipes = {"keep-top2": QuantRecipe(nodes_to_exclude=top)}
    kept_suite = suite.model_copy(update={"quantize": suite.quantize.model_copy(update={"recipes": recipes})})
    kept_comp = Compressor(kept_suite, data, store)
    kept = _int8(kept_comp, teacher, Variant(**{**variant.as_dict(), "quant": "keep-top2"}))
    base = comp.base_graph(teacher, variant.graph)
    op_types = {"MatMul", "Attention", "Gather", "EmbedLayerNormalization"}
    before = {name for name, _ in quantized_nodes(base.path / "model.onnx", int8.path / "model.onnx", op_types)}
    after = {name for name, _ in quantized_nodes(base.path / "model.onnx", kept.path / "model.onnx", op_types)}
    assert after == before - set(top) and set(top) <= before
    float_ops = {n.name: n.op_type for n in onnx.load(str(kept.path / "model.onnx")).graph.node}
    assert all(float_ops[name] in op_types for name in top)  # still the float op, under its own name
    assert kept.info["nodes_excluded"] == sorted(top)


def test_the_held_out_examples_are_neither_calibration_nor_eval_examples(setup):
    from bench.data.splits import eval_splits

    suite, data, store, _ = setup
    comp = Compressor(suite, data, store)
    held, calib = comp.held_out_texts(48), comp.calibration_texts()
    held_set = {held.example(i) for i in range(len(held))}
    assert len(held_set) == 48
    assert not held_set & {calib.example(i) for i in range(len(calib))}
    assert not held_set & {s.texts.example(i) for s in eval_splits(data) for i in range(len(s.texts))}


@pytest.mark.slow
def test_a_cluster_ranks_the_nodes_exactly_as_the_serial_loop(write_suite, tmp_path, caplog):
    """`bench tune --cluster`'s sensitivity pass: one Ray task per node, spread over two nodes declaring the
    build resource, gives the serial loop's ranking (names, order, MSEs bit for bit, flips)."""
    from conftest import FIXTURE_DATA, TINY_SUITE

    from bench.spec.cluster import ClusterConfig

    ray = pytest.importorskip("ray", reason="the cluster extra (ray) is not installed")
    from ray.cluster_utils import Cluster

    suite = load_suite(write_suite(TINY_SUITE.format(data=FIXTURE_DATA / "sst2", n_train=160, n_eval=64)
                                   + "quantize: {calibration_samples: 40}\n"))
    data = load_task_data(suite.data, suite.task, suite.seed)
    variant = Variant("teacher", "onnx", "int8-static", "cpu", 1, "plain", "minmax")  # calibrated per node

    def inputs(store: ArtifactStore):
        comp = Compressor(suite, data, store)
        teacher = build_teacher(suite, data, store, suite.seed)
        return comp, teacher, comp.onnx_int8_static(teacher, variant.graph, variant.calibration, recipe=variant.quant)

    comp, teacher, int8 = inputs(ArtifactStore(tmp_path / "serial"))
    # Two caches holding the same graphs: the ranking is cached, so one ranking per cache.
    shutil.copytree(tmp_path / "serial", tmp_path / "cluster")
    serial = rank_nodes(comp, teacher, variant, int8, samples=48)

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        workers = [cluster.add_node(num_cpus=1, resources={"build": 1}) for _ in range(2)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level=logging.WARNING)
        config = ClusterConfig(targets={"a": {}}, build_resource="build", artifact_url=f"file://{tmp_path / 'bucket'}")
        comp, teacher, int8 = inputs(ArtifactStore(tmp_path / "cluster"))
        with caplog.at_level(logging.INFO, logger="bench.tune.node_ranking"):
            parallel = rank_nodes(comp, teacher, variant, int8, samples=48, cluster=config)
    finally:
        ray.shutdown()
        cluster.shutdown()

    assert len(serial) >= 9 and parallel == serial  # NodeCost equality: name, op type, MSE and flips exactly
    assert f"ranking {len(serial)} nodes as {len(serial)} tasks on the cluster" in caplog.text
    manifest = next((tmp_path / "cluster").glob("sensitivity-*/manifest.json"))
    assert json.loads(manifest.read_text())["info"]["ray_nodes"] == sorted(w.node_id for w in workers)  # both
    base = comp.base_graph(teacher, variant.graph)  # published from the driver for nodes without the shared folder
    assert (tmp_path / "bucket" / base.path.name / "manifest.json").is_file()
