"""`bench tune`'s sensitivity pass over the candidates of a search (bench/tune/search.py): which INT8 candidates get
one, the new candidates that keep their costliest nodes in float (bench/tune/node_ranking.py ranks the nodes),
and the stopping rule of the steps."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench import backends
from bench.schema.variant import Variant
from bench.spec.suite import VariantSpec
from bench.tune.records import Candidate

if TYPE_CHECKING:
    from bench.tune.search import Search


def sensitivity_pass(search: Search, config) -> dict[str, list | str]:
    """For the INT8 ONNX candidates that failed only the accuracy bar and could still win on the objective:
    rank their nodes (bench/tune/node_ranking.py), then keep the k costliest in float, k from `steps` in turn,
    each a new candidate, until one passes, cannot win any more, or the budget is spent."""
    from bench.build.compress import Compressor
    from bench.tune.node_ranking import BudgetSpent, rank_nodes

    s, rankings = search.settings, {}
    if not config.steps:
        return rankings
    bases = [c for c in search.candidates.values() if c.accuracy_failed and c.accuracy_only
             and c.variant.precision in backends.get(c.variant.format).node_quantized_precisions
             and search.could_win(c)]
    bases.sort(key=lambda c: -c.objective if s.maximise else c.objective)
    for base in bases[: config.max_bases]:
        if search.over_budget(Candidate(base.variant)):
            break
        if not search.could_win(base):  # an earlier base's step passed, and is better on the objective
            continue
        ceiling = _own_fp32_failing(search, base.variant.model)
        if ceiling is not None:  # INT8 with nodes in float tends to its FP32 graph: that fails the bar too
            rankings[base.variant.id] = (f"not run: {ceiling.variant.id} (no quantization at all) fails the bar "
                                         f"too, drop {ceiling.drop_text}")
            continue
        built = search.built(base.variant)
        deadline = search.started + s.budget_s if s.budget_s is not None else None
        cluster = search.suite.cluster if search.common["cluster"] else None  # a cluster tune: one task a node
        try:
            ranking = rank_nodes(Compressor(search.suite, search.data, search.store),
                                 built.models[base.variant.model], base.variant,
                                 built.artifacts[base.variant.artifact_key], config.samples, deadline=deadline,
                                 cluster=cluster)
        except BudgetSpent as stop:
            rankings[base.variant.id] = f"not finished: {stop}"
            break
        rankings[base.variant.id] = ranking
        for k in sorted(set(config.steps)):
            if k > len(ranking):
                break
            v = _with_excluded(search, base.variant, [n.node for n in ranking[:k]])
            c = search.try_candidate(v, origin=f"sensitivity: {base.variant.id} with its {k} costliest "
                                               f"node(s) kept in float")
            if c.passes or c.status != "measured" or not search.could_win(c):
                break  # passes (more float only slows it), or it cannot win any more
    return rankings


def _own_fp32_failing(search: Search, model: str) -> Candidate | None:
    """The model's measured FP32 candidate (any format), when it fails the accuracy bar."""
    return next((c for c in search.candidates.values() if c.variant.model == model and c.variant.precision == "fp32"
                 and c.status == "measured" and c.accuracy_failed), None)


def _with_excluded(search: Search, v: Variant, nodes: list[str]) -> Variant:
    """`v` with `nodes` kept in float: a new recipe (the base's own settings, plus the exclusions) named by
    the count and a hash of its settings, added to the searched suite with a variants line for it."""
    from dataclasses import replace

    from bench.store.artifacts import canonical_hash

    q = search.suite.quantize
    base = q.recipe(v.quant)
    own = base.nodes_to_exclude if base.nodes_to_exclude is not None else q.nodes_to_exclude
    excluded = sorted({*own, *nodes})
    recipe = base.model_copy(update={"nodes_to_exclude": excluded})
    # The hash covers every setting, not only the nodes: two bases may keep the same node in float.
    name = f"x{len(nodes)}-{canonical_hash(recipe.model_dump(exclude_none=True))[:6]}"
    recipes = {**q.recipes, name: recipe}
    line = VariantSpec(model=[v.model], format=[v.format], precision=[v.precision], device=[v.device],
                       graph=[v.graph], threads=[v.threads], quant=[name])
    quantize = q.model_copy(update={"recipes": recipes})
    search.suite = search.suite.model_copy(update={"quantize": quantize, "variants": [*search.suite.variants, line]})
    return replace(v, quant=name)
