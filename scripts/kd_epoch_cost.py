"""How much a soft+hard KD epoch with cached teacher logits costs next to plain fine-tuning of the
same student: both trained on the same seeded train subset, alternating, several rounds.

    BENCH_DATA_DIR=../shared/data python scripts/kd_epoch_cost.py --teacher results/artifacts/teacher-<key> \
        --logits results/artifacts/teacher-logits-<key> --rows 6400 --rounds 2

Prints seconds per run and the KD / plain ratio of the medians. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", type=Path, required=True, help="a teacher artifact folder")
    parser.add_argument("--logits", type=Path, required=True, help="its teacher-logits artifact folder")
    parser.add_argument("--rows", type=int, default=6400)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--layers", type=int, nargs="+", default=[0, 2, 4])
    args = parser.parse_args()

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bench.data.load import load_task_data
    from bench.spec.suite import DataConfig, DistillConfig
    from bench.train.distill import distill, init_student_from_teacher

    data = load_task_data(DataConfig(), "sst2", 42)
    logits = np.load(args.logits / "train_logits.npy")
    tokenizer = AutoTokenizer.from_pretrained(args.teacher)
    base = dict(epochs=1, lr=1e-4, batch_size=32, warmup_ratio=0.06, logging_steps=1000, max_train_samples=args.rows)
    configs = {"plain": DistillConfig(**base, alpha_soft=0, alpha_hard=1),
               "kd": DistillConfig(**base, alpha_soft=0.5, alpha_hard=0.5)}
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.rounds):
        for name, cfg in configs.items():
            teacher = AutoModelForSequenceClassification.from_pretrained(args.teacher, use_safetensors=True)
            student = init_student_from_teacher(teacher, args.layers)
            with tempfile.TemporaryDirectory() as out:
                info = distill(student, tokenizer, data, logits if cfg.alpha_soft else None, cfg, 128, 42, Path(out),
                               subset_seed=42)
            times[name].append(info["train_runtime_s"])
            print(f"{name}: {info['train_runtime_s']:.1f} s for {info['train_steps']} steps "
                  f"({info['train_rows']} rows), dev accuracy {info['dev_accuracy']:.4f}", flush=True)
    plain, kd = statistics.median(times["plain"]), statistics.median(times["kd"])
    print(f"median plain {plain:.1f} s, kd {kd:.1f} s, kd/plain = {kd / plain:.3f}")


if __name__ == "__main__":
    main()
