"""`bench check RUN_DIR --profile NAME|FILE [--variant ID ...]`: edge-readiness budgets.

A profile (bench/profiles/<name>.yaml, or any YAML file) sets budgets for size, peak memory, batch-1
p95 latency, accuracy drop, ONNX opset and int8 MatMul coverage; every key is optional and unknown
keys are an error. Each judged row gets PASS or FAIL with a reason per failed budget. A budget whose
metric the row does not carry reads "n/a (not measured)": it neither passes nor fails the row, and the
table says so rather than showing a pass.

Exit codes for the CLI (`CheckResult.exit_code`): 0 every requested variant passes, 1 any fails,
2 bad input (`BenchError`: unknown profile or key, no such run or variant).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from bench.errors import BenchError
from bench.results import RESULTS_FILE, load_results

NOT_MEASURED = "n/a (not measured)"
_EPS = 1e-9  # float slack: a value exactly at the budget passes

# Budget key -> (row field, words for the reason); the accuracy budgets are computed from two rows.
BUDGETS = {
    "max_size_mb": ("size_mb", "size"),
    "max_peak_rss_mb": ("peak_rss_mb", "peak RSS"),
    "max_p95_ms_bs1": ("latency_p95_ms", "batch-1 p95 latency"),
    "max_accuracy_drop_vs_teacher_pts": (None, None),
    "max_accuracy_drop_vs_fp32_pts": (None, None),
    "max_opset": ("onnx_opset", "ONNX opset"),
    "min_int8_matmul_coverage_pct": ("int8_matmul_coverage_pct", "int8 MatMul coverage"),
    "allowed_op_domains": ("onnx_op_domains", "ONNX operator domains"),
}
UNITS = {"max_size_mb": " MB", "max_peak_rss_mb": " MB", "max_p95_ms_bs1": " ms", "max_opset": "",
         "max_accuracy_drop_vs_teacher_pts": " pts", "max_accuracy_drop_vs_fp32_pts": " pts",
         "min_int8_matmul_coverage_pct": "%", "allowed_op_domains": ""}


@dataclass(frozen=True)
class Profile:
    name: str
    threads: int | None = None
    device: str | None = None
    max_size_mb: float | None = None
    max_peak_rss_mb: float | None = None
    max_p95_ms_bs1: float | None = None
    max_accuracy_drop_vs_teacher_pts: float | None = None
    max_accuracy_drop_vs_fp32_pts: float | None = None
    max_opset: int | None = None
    min_int8_matmul_coverage_pct: float | None = None
    allowed_op_domains: tuple[str, ...] | None = None

    def budgets(self) -> list[str]:
        return [k for k in BUDGETS if getattr(self, k) is not None]


_INT_KEYS = {"threads", "max_opset"}
_STR_KEYS = {"device"}


def _profile_file(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if Path(text).suffix in (".yaml", ".yml") or "/" in text or Path(text).is_file():
        if not Path(text).is_file():
            raise BenchError(f"profile file not found: {text}")
        return Path(text)
    try:
        folder = resources.files("bench") / "profiles"
    except (ModuleNotFoundError, TypeError):
        folder = Path(__file__).resolve().parent / "profiles"
    path = folder / f"{text}.yaml"
    if not path.is_file():
        known = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
        raise BenchError(f"unknown profile {text!r} (known: {', '.join(known)}; or pass a YAML file path)")
    return Path(str(path))


def load_profile(name_or_path: str | Path) -> Profile:
    """A bare name loads bench/profiles/<name>.yaml; anything ending in .yaml or holding a / is a path."""
    path = _profile_file(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise BenchError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise BenchError(f"{path}: a profile is a mapping of budget keys, got {type(data).__name__}")
    allowed = [f.name for f in fields(Profile) if f.name != "name"]
    for key, value in data.items():
        if key not in allowed:
            raise BenchError(f"{path}: unknown key {key!r} (allowed: {', '.join(allowed)})")
        if value is None:
            continue
        if key == "allowed_op_domains":
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            data[key] = tuple(value) if ok else value
        elif key in _STR_KEYS:
            ok = isinstance(value, str)
        elif key in _INT_KEYS:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        if not ok:
            want = ("a list of domain names" if key == "allowed_op_domains" else "a string" if key in _STR_KEYS
                    else "a positive integer" if key in _INT_KEYS else "a number >= 0")
            raise BenchError(f"{path}: {key}: expected {want}, got {value!r}")
    return Profile(name=path.stem, **data)


@dataclass
class CheckResult:
    profile: Profile
    run_dir: Path
    table: pd.DataFrame  # one row per judged variant: verdict, a cell per budget, reasons, not_measured

    @property
    def passed(self) -> bool:
        return bool((self.table["verdict"] == "PASS").all())

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


def _num(row: pd.Series, key: str) -> float | None:
    value = row.get(key)
    return None if value is None or pd.isna(value) else float(value)


def _reference_accuracy(ok: pd.DataFrame, row: pd.Series, model: str) -> float | None:
    """Accuracy of `model` pytorch fp32 in the same run and seed, preferring the same device and threads."""
    ref = ok[(ok["model"] == model) & (ok["format"] == "pytorch") & (ok["precision"] == "fp32")
             & (ok["seed"] == row["seed"])]
    same = ref[(ref["device"] == row["device"]) & (ref["threads"] == row["threads"])]
    ref = same if len(same) else ref
    return _num(ref.iloc[-1], "accuracy") if len(ref) else None


def _judge_domains(allowed: tuple[str, ...], row: pd.Series) -> tuple[str, str | None]:
    """Operators the target runtime must provide: every op domain of the graph must be allowed
    (e.g. a fused graph needs ORT's com.microsoft contrib ops, which other ONNX runtimes lack)."""
    domains = row.get("onnx_op_domains")
    if not isinstance(domains, list):
        return NOT_MEASURED, None
    missing = sorted(set(domains) - set(allowed))
    if missing:
        return f"FAIL: {', '.join(missing)}", f"graph uses operator domain(s) {', '.join(missing)} not in " \
                                              f"allowed_op_domains {list(allowed)}"
    return f"pass: {', '.join(domains)}", None


def _judge(budget: str, limit, row: pd.Series, ok: pd.DataFrame) -> tuple[str, str | None]:
    """(cell text, failure reason or None) for one budget on one row."""
    if budget == "allowed_op_domains":
        return _judge_domains(limit, row)
    if budget.startswith("max_accuracy_drop"):
        model = "teacher" if budget.endswith("teacher_pts") else row["model"]
        acc, ref = _num(row, "accuracy"), _reference_accuracy(ok, row, model)
        if acc is None:
            return NOT_MEASURED, None
        if ref is None:
            return f"n/a (no {model} pytorch fp32 row)", None
        value, what = (ref - acc) * 100, f"accuracy drop vs {model} pytorch fp32"
    else:
        field, what = BUDGETS[budget]
        value = _num(row, field)
        if value is None:
            return NOT_MEASURED, None
    unit = UNITS[budget]
    if budget.startswith("min_"):
        failed, op, bound = value < limit - _EPS, "<", "min"
    else:
        failed, op, bound = value > limit + _EPS, ">", "max"
    shown = f"{value:.4g}{unit}"
    if failed:
        return f"FAIL: {shown} {op} {limit:g}{unit}", f"{what} {shown} {op} {bound} {limit:g}{unit}"
    return f"pass: {shown}", None


def check_run(run_dir: Path, profile: Profile, variants: list[str] | None = None) -> CheckResult:
    """Judge the rows of `run_dir` selected by the profile's threads/device (and `variants`, if given)."""
    run_dir = Path(run_dir)
    if not (run_dir / RESULTS_FILE).is_file():
        raise BenchError(f"{run_dir}: no {RESULTS_FILE} (is this a run directory?)")
    df = load_results(run_dir)
    if df.empty:
        raise BenchError(f"{run_dir / RESULTS_FILE}: no complete rows")
    # A resumed run can hold a variant twice; the last row is the latest measurement.
    df = df.drop_duplicates(subset=["variant_id", "seed"], keep="last")
    ok = df[df["status"] == "ok"]
    selected = df
    if profile.threads is not None:
        selected = selected[selected["threads"] == profile.threads]
    if profile.device is not None:
        selected = selected[selected["device"] == profile.device]
    scope = f"threads={profile.threads if profile.threads is not None else 'any'}, " \
            f"device={profile.device or 'any'}"
    if variants:
        missing = sorted(set(variants) - set(selected["variant_id"]))
        if missing:
            raise BenchError(f"{run_dir}: variant(s) {', '.join(missing)} not among the rows profile "
                             f"{profile.name} judges ({scope}): {', '.join(sorted(set(selected['variant_id'])))}")
        selected = selected[selected["variant_id"].isin(variants)]
    if selected.empty:
        raise BenchError(f"{run_dir}: no rows with {scope} for profile {profile.name}")

    out = []
    for _, row in selected.iterrows():
        cells, reasons, not_measured = {}, [], []
        if row["status"] != "ok":
            error = str(row.get("error") or "").strip().splitlines()
            reasons.append(f"not measured: {row['status']}" + (f" ({error[0]})" if error else ""))
        else:
            for budget in profile.budgets():
                cells[budget], reason = _judge(budget, getattr(profile, budget), row, ok)
                if reason:
                    reasons.append(reason)
                elif cells[budget].startswith("n/a"):
                    not_measured.append(budget)
        out.append({"variant": row["variant_id"], "seed": row["seed"], "verdict": "FAIL" if reasons else "PASS",
                    **cells, "reasons": "; ".join(reasons), "not_measured": ", ".join(not_measured)})
    columns = ["variant", "seed", "verdict", *profile.budgets(), "reasons", "not_measured"]
    table = pd.DataFrame(out, columns=columns).sort_values(["variant", "seed"], ignore_index=True)
    return CheckResult(profile, run_dir, table)


def format_markdown(result: CheckResult) -> str:
    """A Markdown summary: overall verdict, the profile's budgets and a per-variant table."""
    p, t = result.profile, result.table
    n_fail = int((t["verdict"] == "FAIL").sum())
    head = f"**FAIL**: {n_fail} of {len(t)} variants over budget" if n_fail \
        else f"**PASS**: all {len(t)} variants within budget"
    budgets = ", ".join(f"{b} {getattr(p, b):g}" if not isinstance(getattr(p, b), tuple)
                        else f"{b} {list(getattr(p, b))}" for b in p.budgets()) or "none"
    lines = [f"## Edge check: profile `{p.name}` on `{result.run_dir}`", "", head, "",
             f"Rows judged: threads={p.threads if p.threads is not None else 'any'}, device={p.device or 'any'}. "
             f"Budgets: {budgets}.", ""]
    disp = t.drop(columns=["reasons", "not_measured"]).fillna("")
    disp["verdict"] = ["**FAIL**" if v == "FAIL" else v for v in disp["verdict"]]
    lines += [disp.to_markdown(index=False, disable_numparse=True), ""]
    failed = t[t["verdict"] == "FAIL"]
    if len(failed):
        lines += ["### Why", ""] + [f"- {r.variant} (seed {r.seed}): {r.reasons}" for r in failed.itertuples()] + [""]
    unmeasured = t[t["not_measured"] != ""]
    if len(unmeasured):
        lines += ["### Not measured (neither pass nor fail)", ""]
        lines += [f"- {r.variant} (seed {r.seed}): {r.not_measured}" for r in unmeasured.itertuples()] + [""]
    return "\n".join(lines)
