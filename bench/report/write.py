"""`bench report RUN_DIR [RUN_DIR ...]`: reports/<name>/ with index.md, a self-contained index.html
(tables and plots embedded, opens from disk offline), the PNG plots and a CSV of the rows.

It reads results files only, so it works on runs produced on other machines. Rows of several
seeds of one variant are shown as mean ± std with every seed's value.

Rows are judged on the task's primary metric (`score`, bench/tasks/table.py): "accuracy %" for accuracy
(SST-2, MNLI, ...), "<metric> ×100" otherwise (Matthews correlation, F1, Pearson ×100, as GLUE reports
them); deltas vs the teacher are points of that scale.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.common.errors import BenchError
from bench.common.paths import confined
from bench.gate.check import load_profile
from bench.report.adaptation import NOTES as METHOD_NOTES
from bench.report.adaptation import method_table
from bench.report.decision import decision_sections
from bench.report.edge_costs import cold_start_plot, edge_section, edge_table
from bench.report.ops import op_plot, op_table, profiled, step_sentences
from bench.report.render import Section, to_html, to_markdown
from bench.report.server import NOTES, load_table, server_entries, server_loads, server_plot
from bench.report.targets import target_line
from bench.store.results import IDENTITY, Run, open_run, reference_mask, variant_label, with_score

VARIANT_KEYS = [c for c in IDENTITY if c != "seed"]
COLUMNS = {
    "model": "model", "format": "format", "precision": "precision", "graph": "graph", "device": "device",
    "threads": "threads", "params_m": "params (M)", "size_mb": "size MB", "score_pct": "accuracy %",
    "score_std": "± std (seeds)", "batched_score_pct": "batched", "seeds": "seeds", "delta_pts": "Δ vs teacher (pts)",
    "delta_fp32_pts": "Δ vs own fp32 (pts)",
    "retained_pct": "% of teacher", "latency_p50_ms": "p50 ms",
    "latency_p50_ci95_low_ms": "p50 95% CI low", "latency_p50_ci95_high_ms": "p50 95% CI high",
    "latency_p90_ms": "p90 ms", "latency_cv": "CV per call",
    "speedup": "speedup, p50 ratio", "speedup_vs_reference": "speedup, interleaved",
    "speedup_interval": "its ≥95% interval", "parity_max_abs_diff": "parity max |Δlogit|",
    "parity_label_agreement": "label agreement", "peak_rss_mb": "peak RSS MB",
    "server_max_qps": "max QPS (Server, p99 bound)",
}


def primary_metric(df: pd.DataFrame) -> str:
    """The primary metric the measured rows were scored on; "score" when they mix metrics (a run of one
    suite never does), "accuracy" for rows without one (written before tasks were declared)."""
    names = metric_names(df)
    return names[0] if len(names) == 1 else "score" if names else "accuracy"


def metric_names(df: pd.DataFrame) -> list[str]:
    if "metric" not in df or "status" not in df:
        return []
    return sorted({str(m) for m in df.loc[df["status"] == "ok", "metric"].dropna()})


def score_header(metric: str) -> str:
    """`accuracy %`, or `<metric> ×100` (Matthews correlation, F1, Pearson, as GLUE reports them)."""
    return "accuracy %" if metric == "accuracy" else f"{metric} ×100"


def _scored(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with `metric` and `score` (bench.store.results.with_score), for frames not read through Run.frame."""
    if "score" in df and "metric" in df:
        return df
    return pd.DataFrame([with_score(r) for r in df.to_dict("records")], index=df.index)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """One line per variant (seeds averaged), with its primary score and speed relative to the teacher
    PyTorch FP32 (`accuracy` and `accuracy_std` stay: the accuracy field itself, where the task has it)."""
    ok = _scored(df[df["status"] == "ok"]).copy()
    numeric = ["params", "size_mb", "accuracy", "score", "latency_p50_ms", "latency_p50_ci95_low_ms",
               "latency_p50_ci95_high_ms", "latency_p90_ms", "latency_cv",
               "parity_max_abs_diff", "parity_label_agreement", "peak_rss_mb", "rss_before_load_mb",
               "speedup_vs_reference", "speedup_ci_low", "speedup_ci_high", "server_max_qps", "batched_score"]
    for col in numeric:  # absent (older rows, a regression task's accuracy): NaN
        ok[col] = pd.to_numeric(ok[col], errors="coerce") if col in ok else float("nan")
    grouped = ok.groupby(VARIANT_KEYS, dropna=False, sort=False)
    out = grouped[numeric].mean()
    out["score_std"] = grouped["score"].std()  # NaN with one seed
    out["accuracy_std"] = grouped["accuracy"].std()
    out["metric"] = grouped["metric"].first()
    out["seeds"] = grouped["seed"].apply(lambda s: ", ".join(str(x) for x in sorted(s)))
    out["score_by_seed"] = grouped["score"].apply(lambda s: ", ".join(f"{100 * x:.2f}" for x in s))
    out = out.reset_index()

    base = out[reference_mask(out, "teacher")]
    teacher_score = base["score"].iloc[0] if len(base) else float("nan")
    # Speed is compared at the same device and thread count, measured in the same run.
    base_p50 = base.set_index(["device", "threads"])["latency_p50_ms"]
    out["params_m"] = out["params"] / 1e6
    out["score_pct"] = out["score"] * 100
    out["batched_score_pct"] = out["batched_score"] * 100
    out["score_std"] = out["score_std"] * 100
    out["accuracy_std"] = out["accuracy_std"] * 100
    out["delta_pts"] = (out["score"] - teacher_score) * 100
    out["retained_pct"] = out["score"] / teacher_score * 100
    out["speedup"] = [base_p50.get((d, t), float("nan")) / p
                      for d, t, p in zip(out["device"], out["threads"], out["latency_p50_ms"], strict=True)]
    out["speedup_interval"] = [f"{lo:.3g}–{hi:.3g}" if pd.notna(lo) else float("nan")
                               for lo, hi in zip(out["speedup_ci_low"], out["speedup_ci_high"], strict=True)]
    own = out[reference_mask(out)].groupby("model")["score"].first()
    out["delta_fp32_pts"] = (out["score"] - out["model"].map(own)) * 100
    out["label"] = out.apply(variant_label, axis=1)
    out["precision"] = [(f"{p}-{c}" if c else p) + (f"+{q}" if q else "")
                        for p, c, q in zip(out["precision"], out["calibration"], out["quant"], strict=True)]
    order = ["device", "threads", "model", "format", "precision", "graph"]
    return out.sort_values(order, ascending=[True, True, False, False, True, False], kind="stable", ignore_index=True)


def grid_table(df: pd.DataFrame) -> pd.DataFrame:
    """The batch x sequence-length cells of every measured row, one line per cell, seeds averaged."""
    cells = [{**cell, "label": variant_label(r)} for _, r in df[df["status"] == "ok"].iterrows()
             if isinstance(r.get("latency_grid"), list) for cell in r["latency_grid"]]
    if not cells:
        return pd.DataFrame()
    grid = pd.DataFrame(cells)
    return grid.groupby(["label", "batch", "seq_len"], as_index=False)[
        ["p50_ms", "p90_ms", "samples_per_s", "tokens_per_s"]].mean()


def training_table(df: pd.DataFrame) -> pd.DataFrame:
    """One line per trained model: how it was trained and its dev score over seeds (the task's primary
    metric on PyTorch FP32 rows, so the number is the model's, not a runtime's), with train wall time per
    epoch; % of teacher is of that score."""
    rows = _scored(df[(df["status"] == "ok") & reference_mask(df)])
    if rows.empty or "train_s_per_epoch" not in rows or rows["train_s_per_epoch"].isna().all():
        return pd.DataFrame()
    # One line per trained artifact: a teacher pinned by teacher.seed is measured at every seed but
    # trained once, and counts once.
    rows = rows.drop_duplicates(["model", "artifact"], keep="last")
    rows = rows.assign(score=pd.to_numeric(rows["score"], errors="coerce"))
    g = rows.groupby("model", sort=False)
    dev = f"dev {score_header(primary_metric(rows))}"
    out = pd.DataFrame({
        "loss terms": g["train_loss_terms"].first().fillna("hard (teacher fine-tuning)")
        if "train_loss_terms" in rows else "",
        "train rows": g["train_rows"].first(),
        "seeds": g["artifact"].nunique(),
        dev: g["score"].mean() * 100,
        "± std": g["score"].std() * 100,
        "per seed": g["score"].apply(lambda a: ", ".join(f"{100 * x:.2f}" for x in a)),
        "train s/epoch": g["train_s_per_epoch"].mean(),
    })
    if "train_method" in rows and (rows["train_method"] == "lora").any():
        out.insert(0, "method", g.apply(lambda r: f"lora r{int(r['lora_r'].iloc[0])}"
                                        if r["train_method"].iloc[0] == "lora" else "full", include_groups=False))
    if "teacher" in out.index:
        out.insert(out.columns.get_loc("per seed"), "% of teacher", out[dev] / out.loc["teacher", dev] * 100)
    return out.reset_index()


def offline_table(df: pd.DataFrame) -> pd.DataFrame:
    """Offline scenario entries of every measured row, one line per batch size, seeds averaged."""
    entries = [{**e, "label": variant_label(r)} for _, r in df[df["status"] == "ok"].iterrows()
               if isinstance(r.get("offline"), list) for e in r["offline"]]
    if not entries:
        return pd.DataFrame()
    return pd.DataFrame(entries).groupby(["label", "batch_size", "sort_by_length"], as_index=False)[
        ["samples_per_s", "tokens_per_s", "padded_tokens_per_s", "padding_pct", "wall_s"]].mean()


def other_splits_table(df: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """The task's metrics on its further eval splits (`metrics` keys `<metric>@<split>`, e.g. MNLI
    mismatched), ×100, one line per variant in the Variants table's order, seeds averaged."""
    if "metrics" not in df:
        return pd.DataFrame()
    entries = [{"variant": variant_label(r), **{k: 100 * float(v) for k, v in r["metrics"].items()
                                                if "@" in k and v is not None}}
               for _, r in df[df["status"] == "ok"].iterrows() if isinstance(r.get("metrics"), dict)]
    entries = [e for e in entries if len(e) > 1]
    if not entries:
        return pd.DataFrame()
    table = pd.DataFrame(entries).groupby("variant", sort=False).mean()
    order = [label for label in summary["label"] if label in table.index]
    table = table.loc[order + [label for label in table.index if label not in order]]
    return table.rename(columns={c: f"{c} ×100" for c in table.columns}).reset_index()


def _table(summary: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    columns = list(COLUMNS)
    if not summary["seeds"].str.contains(",").any():  # one seed: no spread to show
        columns = [c for c in columns if c not in ("score_std", "seeds")]
    if summary["speedup_vs_reference"].isna().all():  # measured without measure.interleave
        columns = [c for c in columns if c not in ("speedup_vs_reference", "speedup_interval")]
    if summary["batched_score_pct"].isna().all():  # no row whose numerics depend on the batch (dynamic INT8)
        columns.remove("batched_score_pct")
    if summary["server_max_qps"].isna().all():  # no variant served (measure.server), or none within the bound
        columns.remove("server_max_qps")
    headers = {c: COLUMNS[c] for c in columns} | {"score_pct": score_header(metric)}
    return summary[columns].rename(columns=headers)


def _machine_line(run: dict) -> str:
    env = run.get("environment")
    if not env:
        return ""
    cpu, v = env.get("cpu", {}), env.get("versions", {})
    flags = ", ".join(f for f, on in cpu.get("flags", {}).items() if on)
    # The runtimes that measured rows are named when installed (openvino and nncf are an extra).
    extra = "".join(f", {lib} {v[lib]}" for lib in ("openvino", "nncf") if v.get(lib))
    return (f"Machine: {cpu.get('model')} ({cpu.get('logical_cores')} logical cores; {flags}), "
            f"{env.get('memory_gb')} GB, Python {env.get('python')}; torch {v.get('torch')}, "
            f"transformers {v.get('transformers')}, onnxruntime {v.get('onnxruntime')}{extra}; "
            f"git {env.get('git_sha')}.")


def _title(runs: list[Run]) -> str:
    on = f", target {runs[0].target}" if runs[0].target else ""
    return f"{runs[0].info.get('suite', '?')} — {', '.join(r.info.get('run_id', '?') for r in runs)}{on}"


def _one_example(df: pd.DataFrame, metric: str = "accuracy") -> str:
    """The accuracy step of one eval example, from the rows' own eval size (not a hard-coded dev set);
    other metrics (MCC, F1, Pearson) have no fixed step per example."""
    if metric != "accuracy":
        return ""
    sizes = sorted({int(n) for n in df.get("eval_samples", pd.Series(dtype=float)).dropna()})
    if not sizes:
        return ""
    steps = " / ".join(f"{n} rows: one example is {100 / n:.2g} points" for n in sizes)
    return f"On this eval split ({steps}): "


def sections(df: pd.DataFrame, summary: pd.DataFrame, runs: list[Run], pngs: list[Path],
             grid: pd.DataFrame, offline: pd.DataFrame, images: dict[str, Path | None] | None = None,
             profile: str | None = None) -> list[Section]:
    """Everything the report says, in order: the decision first. `images`: the sections' own charts, by
    name (`ops`, `server`, `cold_start`)."""
    images = images or {}
    ops_png, server_png = images.get("ops"), images.get("server")
    first = runs[0].info
    intro = [_machine_line(first)] if _machine_line(first) else []
    if runs[0].target:  # run.json's machine is the driver's; the rows say where they were measured
        intro = [target_line(df, runs[0].target),
                 *(line.replace("Machine:", "The driver's machine (run.json):", 1) for line in intro)]
    if first.get("data"):
        d = first["data"]
        intro.append(f"Data: {d['origin']} (train {d['train_rows']} rows, eval {d['eval_rows']} rows).")
    metric, names = primary_metric(df), metric_names(df)
    if len(names) > 1:
        intro.append(f"These rows mix primary metrics ({', '.join(names)}): scores, deltas and % of teacher "
                     "below compare different metrics (runs of different tasks?).")
    out = decision_sections(runs, summary, profile, Section, score_header(metric))
    out += [Section(notes=intro)] if intro else []
    scored = ("Accuracy: the whole eval split" if metric == "accuracy"
              else f"{score_header(metric)}: the task's primary metric on its whole primary eval split")
    out.append(Section(
        "Variants", _table(summary, metric), missing="—",
        notes=["Latency: batch 1 over the real dev sentences (tokenisation not timed), after warmup; CV is the "
               f"coefficient of variation of the per-call times. {scored} through the variant's own runtime"
               f"{'' if metric == 'accuracy' else '; Δ in points of that scale'}, as deployed: dynamic INT8 "
               "(whose numerics depend on the batch) predicted one example at a time, like the latency loop"
               + ("; batched: the same rows at the eval batch size (padded batches), as an Offline deployment "
                  "scores them" if summary["batched_score_pct"].notna().any() else "") + ". "
               "Speedup: teacher PyTorch FP32 p50 / variant p50, same threads, same run (isolated p50 ratio)."
               + (" Speedup, interleaved: the median over rounds in which the variant and the teacher in "
                  "PyTorch FP32 took turns on the same dev examples (measure.interleave), with the median's "
                  "order-statistic interval; it does not depend on when each side ran."
                  if summary["speedup_vs_reference"].notna().any() else "")]))
    drift = [f"{ref}: {d['drift_pct']:+.1f}% between its first and last {d['window']} rounds (noise floor "
             f"{d['noise_floor_pct']:.1f}%)" for run in runs
             for ref, d in (run.info.get("reference_drift") or {}).items() if d.get("flagged")]
    if drift:
        out.append(Section("Reference drift", items=drift, notes=[
            "The machine's speed moved during the run by more than the noise of the reference's own rounds: "
            "p50s and p50 ratios of variants measured at different times are suspect; interleaved speedups "
            "are not (both sides of each round saw the same machine)."]))
    prof = profiled(df)
    if not prof.empty:
        out.append(Section(
            "Where the time goes", op_table(prof), floatfmt=".3g", items=step_sentences(prof),
            images=[ops_png] if ops_png else [],
            notes=["Per-operator time from the runtime's own profiler (ONNX Runtime kernel time, PyTorch CPU self "
                   "time) over batch-1 calls on the dev stream in a separately profiled session, summed by kind "
                   "(bench/child/op_profile.py); p50 is the whole timed call. Each step compares a variant with "
                   "the one it was made from (same model and threads). The profiler's own per-node overhead "
                   "inflates graphs with many small nodes (op time can exceed p50): compare kinds between "
                   "variants, not op time with p50. Every op per variant: the row's `op_profile` in "
                   "results.csv."]))
    splits = other_splits_table(df, summary)
    if not splits.empty:
        out.append(Section("Other eval splits", splits, floatfmt=".4g", missing="—",
                           notes=["The task's metrics on its further eval splits, through the variant's own "
                                  "runtime, ×100, mean over seeds."]))
    training = training_table(df)
    if not training.empty:
        dev = "Dev accuracy" if metric == "accuracy" else f"Dev {metric} (×100)"
        step = _one_example(df, metric)
        out.append(Section(
            "Training", training, floatfmt=".4g", missing="—",
            notes=[f"{dev} of the PyTorch FP32 model on the whole eval split, mean and sample std over seeds. "
                   f"{step}{'a' if step else 'A'} difference smaller than the seed spread is not a win. Train "
                   "s/epoch: wall time of the training loop (a resumed build counts only its remaining steps)."]))
    methods = method_table(df)
    if not methods.empty:
        out.append(Section("Full fine-tuning vs LoRA", methods, floatfmt=".4g", missing="—", notes=METHOD_NOTES))
    multi = summary[summary["seeds"].str.contains(",")]
    if len(multi):
        title = "Accuracy per seed" if metric == "accuracy" else f"{score_header(metric)} per seed"
        out.append(Section(title, items=[f"{r.label}: {r.score_by_seed}" for r in multi.itertuples()]))
    if not grid.empty:
        wide = grid.pivot_table(index="label", columns=["batch", "seq_len"], values="p50_ms")
        wide.columns = [f"b{b}×{s}" for b, s in wide.columns]
        out.append(Section("Latency grid (p50 ms, batch × sequence length)", wide.reset_index(),
                           notes=["Every cell with p90, samples/s and tokens/s: latency_grid.csv."]))
    if not offline.empty:
        out.append(Section(
            "Offline throughput (whole dev set per batch size)",
            offline.rename(columns={"batch_size": "batch", "sort_by_length": "sorted",
                                    "tokens_per_s": "real tokens/s", "padded_tokens_per_s": "padded tokens/s",
                                    "padding_pct": "padding %", "samples_per_s": "samples/s", "wall_s": "timed s"}),
            floatfmt=".4g", notes=["Dynamic padding per batch, tokenisation untimed; real tokens exclude padding."]))
    edge = edge_section(edge_table(df), images.get("cold_start"), Section)
    if edge is not None:
        out.append(edge)
    served = server_entries(df)
    if not served.empty:
        out.append(Section("Server scenario", served, floatfmt=".4g", missing="—", notes=[NOTES]))
        out.append(Section("Server scenario: latency per offered rate", load_table(server_loads(df)),
                           floatfmt=".4g", images=[server_png] if server_png else []))
    out.append(Section("Plots", images=pngs))
    failed = df[df["status"] != "ok"]
    if len(failed):
        out.append(Section("Failed variants", items=[f"{r.variant_id}: {r.status}: {r.error}"
                                                     for r in failed.itertuples()]))
    skipped = [s for r in runs for s in r.skipped]
    if skipped:
        out.append(Section("Skipped variants", items=[f"{s['variant']}: {s['reason']}" for s in skipped]))
    for run in runs:
        if run.info.get("stages"):
            stages = pd.DataFrame(
                [[name, f"{s.get('wall_s')}", f"{s.get('build_time_s', '')}", f"{s.get('reused', '')}"]
                 for name, s in run.info["stages"].items()],
                columns=["stage", "wall s in this run", "build time s", "reused"], dtype=object)
            out.append(Section(f"Stage wall times ({run.info.get('run_id')})", stages, literal=True))
    return out


def write_report(run_dirs: list[Path] | Path, out_root: Path = Path("reports"), name: str | None = None,
                 profile: str | None = None) -> Path:
    """reports/<name>/; `profile` (a name or file) decides the top block, else each run's suite `profile:`."""
    try:
        from bench.report import plots  # noqa: F401  (matplotlib: checked before anything is written)
    except ImportError as exc:
        raise BenchError(f"bench report needs matplotlib ({exc}): pip install 'bench-bert[report]'") from None

    run_dirs = [Path(d) for d in (run_dirs if isinstance(run_dirs, list) else [run_dirs])]
    if profile is not None:
        load_profile(profile)  # a bad --profile is one line, before anything is written
    runs = [open_run(d) for d in run_dirs]
    name = name or "+".join(r.info.get("run_id", r.path.name) for r in runs)
    out_dir = confined(out_root, name)  # a run_id from a downloaded run.json must not escape reports/
    targets = sorted({t for r in runs for t in r.targets})
    if len(targets) > 1:  # `bench run --cluster` on several targets: one report, and one decision, per target
        from bench.report.targets import write_per_target

        return write_per_target(runs, targets, out_dir, profile, write_one, summarise,
                                lambda df: score_header(primary_metric(df)))
    return write_one([r.on_target(targets[0]) for r in runs] if targets else runs, out_dir, profile)


def write_one(runs: list[Run], out_dir: Path, profile: str | None = None) -> Path:
    """The report of `runs`' rows (of one machine or cluster target) into `out_dir`."""
    from bench.report.plots import all_plots

    df = pd.concat([r.frame() for r in runs], ignore_index=True)
    summary = summarise(df)
    if summary.empty:
        raise BenchError(f"{runs[0].path}: no variant measured successfully; nothing to report")
    out_dir.mkdir(parents=True, exist_ok=True)
    grid = grid_table(df)
    pngs = all_plots(summary, out_dir, grid, metric=primary_metric(df))
    if not grid.empty:
        grid.to_csv(out_dir / "latency_grid.csv", index=False)
    offline = offline_table(df)
    df.drop(columns=[c for c in ("latency_raw_ms", "latency_grid", "offline", "server", "cold_start_runs_ms")
                     if c in df]).to_csv(
        out_dir / "results.csv", index=False)
    prof = profiled(df)
    ops_png = op_plot(prof, out_dir / "op_time_by_kind.png") if not prof.empty else None
    loads = server_loads(df)
    server_png = server_plot(loads, out_dir / "latency_vs_load.png") if not loads.empty else None
    edge = edge_table(df)
    cold_png = cold_start_plot(edge, out_dir / "cold_start.png") if not edge.empty else None
    images = {"ops": ops_png, "server": server_png, "cold_start": cold_png}
    title, parts = _title(runs), sections(df, summary, runs, pngs, grid, offline, images, profile)
    for filename, text in (("index.md", to_markdown(title, parts)), ("index.html", to_html(title, parts))):
        tmp = out_dir / f".{filename}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out_dir / filename)
    return out_dir / "index.md"
