"""Training survives kill -9 (resumes from the last complete checkpoint and ends where an uninterrupted
run ends), and runs under torchrun with 2 CPU processes (DDP over gloo)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import FIXTURE_DATA
from safetensors.torch import load_file
from test_general_distill import SUITE as GENERAL_DISTILL_SUITE
from transformers.trainer_pt_utils import LengthGroupedSampler

from bench.train.finetune import COMPLETE_MARKER, EpochSeededLengthGroupedSampler, last_complete_checkpoint

SUITE = f"""
name: resume
seed: 3
data: {{source: glue-tsv, path: "{FIXTURE_DATA / 'sst2'}", max_length: 32}}
teacher:
  source: "tiny:layers=2,hidden=32,heads=2,intermediate=64,vocab=300"
  finetune: {{epochs: 3, lr: 1e-3, batch_size: 16, logging_steps: 5, checkpoint_steps: 5}}
variants:
  - {{model: teacher, format: pytorch}}
"""


def _train_cmd(suite: Path, results: Path) -> list[str]:
    return [sys.executable, "-m", "bench.cli", "train", str(suite), "--results-dir", str(results)]


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))


def _weights(results: Path, artifact: str = "teacher-*") -> dict:
    (artifact,) = [p for p in (results / "artifacts").glob(artifact) if p.is_dir()]
    return load_file(artifact / "model.safetensors")


def test_incomplete_checkpoints_are_never_loaded(tmp_path):
    for step, complete in ((5, True), (10, True), (15, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / COMPLETE_MARKER).write_text(str(step))
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert not (tmp_path / "checkpoint-15").exists()  # half-written: removed
    assert last_complete_checkpoint(tmp_path / "nothing-here") is None


def _kill_after_checkpoint(suite: Path, results: Path, step: int, log: Path, artifact: str = "teacher-*") -> None:
    """Start a build and kill -9 it as soon as `artifact`'s checkpoint-<step> is marked complete."""
    with open(log, "w") as out:
        proc = subprocess.Popen(_train_cmd(suite, results), env=_env(), stdout=out, stderr=subprocess.STDOUT)
        marker = f"{artifact}/checkpoint-{step}/{COMPLETE_MARKER}"
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if list((results / "artifacts" / ".work").glob(marker)):
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the build ended before checkpoint-{step} was killed; see {log}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_length_grouped_order_is_replayable_in_every_epoch():
    lengths = [int(n) for n in torch.randint(3, 60, (200,), generator=torch.Generator().manual_seed(0))]
    sampler = EpochSeededLengthGroupedSampler(16, lengths, seed=7)

    torch.manual_seed(7)
    stock = list(LengthGroupedSampler(16, lengths=lengths))
    torch.manual_seed(7)
    assert list(sampler) == stock, "epoch 0 must be the stock Trainer's order for the same seed"

    orders = {}
    for epoch in (1, 2):
        sampler.set_epoch(epoch)
        torch.manual_seed(1234)  # the global RNG wherever a resumed run happens to be
        first = list(sampler)
        torch.manual_seed(99)
        assert list(sampler) == first, f"epoch {epoch}: order depends on the global RNG"
        assert sorted(first) == list(range(200))
        orders[epoch] = first
    assert orders[1] != orders[2] != stock


@pytest.mark.slow
def test_kill_9_then_resume_matches_uninterrupted_run(write_suite, tmp_path):
    """10 steps per epoch, a checkpoint every 5: killed in the first epoch and in the middle of the
    second (where the stock length-grouped sampler used to replay a different batch order)."""
    suite = write_suite(SUITE)
    straight = tmp_path / "straight"
    subprocess.run(_train_cmd(suite, straight), env=_env(), check=True, capture_output=True)
    a = _weights(straight)
    for step in (5, 15):
        resumed = tmp_path / f"killed-at-{step}"
        _kill_after_checkpoint(suite, resumed, step, tmp_path / f"first-{step}.log")
        assert not [p for p in (resumed / "artifacts").glob("teacher-*") if p.is_dir()], "killed before publishing"

        second = subprocess.run(_train_cmd(suite, resumed), env=_env(), capture_output=True, text=True)
        assert second.returncode == 0, second.stderr[-2000:]
        assert "resuming from" in second.stderr
        (artifact,) = [p for p in (resumed / "artifacts").glob("teacher-*") if p.is_dir()]
        info = json.loads((artifact / "manifest.json").read_text())["info"]
        assert info["resumed_from_step"] >= step and info["train_steps"] == 30
        b = _weights(resumed)
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=f"killed at {step}: {name}")
        assert not list((resumed / "artifacts" / ".work").glob("teacher-*")), "checkpoints removed after publishing"


# test_general_distill's suite, with 3 general epochs and a checkpoint every 5 steps.
GENERAL_SUITE = GENERAL_DISTILL_SUITE.replace("name: general", "name: resume-general").replace(
    "general: {text: TEXT, epochs: 2,", "general: {text: TEXT, epochs: 3, checkpoint_steps: 5,")


@pytest.mark.slow
def test_general_distillation_killed_mid_epoch_resumes_to_the_same_weights(write_suite, tmp_path):
    """Masked-LM batches: the masks of the batches after a resume are the ones the uninterrupted run drew."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["a gripping , funny film", "the plot is thin", "wonderful acting",
                                 "a dull and tedious mess", "it is charming"] * 16))  # 80 rows: 10 steps per epoch
    suite = write_suite(GENERAL_SUITE.replace("TEXT", str(corpus)))
    general = "student-general-*"
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    subprocess.run(_train_cmd(suite, straight), env=_env(), check=True, capture_output=True)
    _kill_after_checkpoint(suite, resumed, 15, tmp_path / "first.log", artifact=general)
    second = subprocess.run(_train_cmd(suite, resumed), env=_env(), capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resuming from" in second.stderr
    a, b = _weights(straight, general), _weights(resumed, general)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.slow
def test_two_process_ddp_on_cpu(write_suite, tmp_path):
    if shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists():
        pytest.skip("torchrun is not on PATH")
    suite = write_suite(SUITE.replace("epochs: 3", "epochs: 2"))
    results = tmp_path / "results"
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "bench.cli", "train", str(suite),
           "--results-dir", str(results)]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (artifact,) = [p for p in (results / "artifacts").glob("teacher-*") if p.is_dir()]
    info = json.loads((artifact / "manifest.json").read_text())["info"]
    assert info["world_size"] == 2
    # 160 rows, batch 16 per process, 2 processes: 5 steps per epoch instead of 10.
    assert info["train_steps"] == 10
    assert (artifact / "model.safetensors").is_file()
