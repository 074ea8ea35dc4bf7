"""What a training run costs in memory: the process's peak RSS during the training loop, sampled in a
background thread, and the growth over the RSS at its start (activations, gradients, optimizer state:
what the method itself needs). On CUDA, torch's allocator peak too. A resumed run loads its checkpoint
before the loop starts, so its growth leaves out the restored optimizer state.

Freed memory the C allocator keeps would hide a later run's growth when several models train in one
process, so the heap is trimmed (glibc malloc_trim) before the baseline is read.
"""

from __future__ import annotations

import ctypes
import threading

import psutil
import torch
from transformers import TrainerCallback

SAMPLE_INTERVAL_S = 0.01


def _trim_heap() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the baseline is what it is
        pass


class PeakMemory(TrainerCallback):
    """Samples RSS from on_train_begin to on_train_end; summary() gives the numbers in MiB."""

    def __init__(self):
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.start_rss = self.peak_rss = 0
        self.peak_cuda: int | None = None

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)

    def on_train_begin(self, args, state, control, **kwargs):
        _trim_heap()
        self.start_rss = self.peak_rss = self._process.memory_info().rss
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._sample, name="train-peak-rss", daemon=True)
        self._thread.start()

    def on_train_end(self, args, state, control, **kwargs):
        self.stop()
        self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)
        if torch.cuda.is_available():  # read now: the dev evaluation after training is not training
            self.peak_cuda = torch.cuda.max_memory_allocated()

    def stop(self) -> None:
        """Ends the sampling thread; also called when training raised (on_train_end never ran)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> dict:
        mib = 2**20
        out = {"train_peak_rss_mb": round(self.peak_rss / mib, 1),
               "train_rss_growth_mb": round((self.peak_rss - self.start_rss) / mib, 1)}
        if self.peak_cuda is not None:
            out["train_peak_cuda_mb"] = round(self.peak_cuda / mib, 1)
        return out
