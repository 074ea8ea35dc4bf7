"""Memory of the measuring child: three views of its peak RSS, and GPU memory on CUDA rows.

- VmHWM (/proc/self/status): the kernel's exact high-water mark of this address space. It covers
  everything since execve, so it cannot be split into phases.
- a sampled peak: a background thread reads /proc/self/statm every SAMPLE_INTERVAL_S. It misses
  spikes shorter than the interval, but it can be reset, so each phase gets its own peak.
- ru_maxrss (getrusage): on Linux it survives execve, so it can report the pre-exec peak of the
  forked parent; kept because it is what most tools print.

GPU: torch's allocator peaks (PyTorch rows) and NVML's view (any CUDA row, when pynvml is
importable): the device's used memory above a baseline read before the variant loads (NVML sees every
process), and this process's share.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import psutil

# <= 10 ms. Each sample takes the GIL for tens of microseconds; the runtimes release it while
# they compute, so the timed calls are barely touched (docs/measurement.md has the bare-loop check).
SAMPLE_INTERVAL_S = 0.005


def mb(n_bytes: float) -> float:
    return round(n_bytes / 2**20, 2)


def vmhwm_bytes() -> int:
    """This process's own RSS high-water mark. Linux's VmHWM belongs to the address space, which
    execve replaces; ru_maxrss would also carry the parent's peak across fork+exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return ru_maxrss_bytes()


def ru_maxrss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class _RssProbe:
    """Current RSS in bytes: one pread of /proc/self/statm kept open (cheaper than psutil every 5 ms)."""

    def __init__(self):
        try:
            self._fd: int | None = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self._fd, self._process = None, psutil.Process()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def __call__(self) -> int:
        if self._fd is None:
            return self._process.memory_info().rss
        return int(os.pread(self._fd, 128, 0).split()[1]) * self._page

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd, self._process = None, psutil.Process()


class PeakSampler:
    """Background thread keeping the maximum of each probe (name -> bytes) since start or reset.

    Probes: always "rss"; callers may add others (NVML on CUDA). A probe that raises is dropped,
    so a flaky driver cannot end the measurement.
    """

    def __init__(self, probes: dict[str, Callable[[], int]] | None = None, interval_s: float = SAMPLE_INTERVAL_S):
        self._rss = _RssProbe()
        self.probes = {"rss": self._rss, **(probes or {})}
        self.interval_s = interval_s
        self.samples = 0
        self._peaks: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-peak-sampler", daemon=True)

    def _sample(self) -> None:
        for name, probe in list(self.probes.items()):
            try:
                value = probe()
            except Exception:  # noqa: BLE001 - see the class docstring
                self.probes.pop(name, None)
                continue
            with self._lock:
                self._peaks[name] = max(self._peaks.get(name, 0), value)
        self.samples += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> PeakSampler:
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> dict[str, int]:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self._sample()
            self._rss.close()
        return self.peaks()

    def peaks(self) -> dict[str, int]:
        """Peaks so far; while running, the current values count too (a read right after a change sees it)."""
        if not self._stop.is_set():
            self._sample()
        with self._lock:
            return dict(self._peaks)

    def reset(self) -> None:
        with self._lock:
            self._peaks.clear()
        self._sample()

    def __enter__(self) -> PeakSampler:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def peak_fields(peaks: dict[str, int]) -> dict[str, float]:
    """Sampler peaks as row fields: rss -> peak_rss_sampled_mb, gpu_nvml_used -> gpu_nvml_used_peak_mb, ...
    A process NVML never listed (no CUDA context yet, or another PID namespace) gets no field, not 0."""
    return {("peak_rss_sampled_mb" if name == "rss" else f"{name}_peak_mb"): mb(v) for name, v in peaks.items()
            if not (name == "gpu_nvml_process" and v == 0)}


# ---------------------------------------------------------------- GPU (written for CUDA machines)

def _nvml_handle(pynvml):
    """The NVML handle of the first visible CUDA device (NVML ignores CUDA_VISIBLE_DEVICES)."""
    first = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
    if first.startswith(("GPU-", "MIG-")):
        return pynvml.nvmlDeviceGetHandleByUUID(first)
    return pynvml.nvmlDeviceGetHandleByIndex(int(first) if first.isdigit() else 0)


def nvml_probes() -> dict[str, Callable[[], int]]:
    """Probes for PeakSampler: device-wide used memory above a baseline read here, and this process's
    share; {} without pynvml. Called before the variant loads, so the device-wide peak leaves out what was
    already there (bench's parent, the idle interleave reference process, other jobs' memory)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = _nvml_handle(pynvml)
        baseline = pynvml.nvmlDeviceGetMemoryInfo(handle).used
    except Exception:  # noqa: BLE001 - no pynvml, no driver, no device: no GPU fields
        return {}
    return nvml_probes_for(pynvml, handle, baseline, os.getpid())


def nvml_probes_for(pynvml, handle, baseline: int, pid: int) -> dict[str, Callable[[], int]]:
    def device_used() -> int:  # another process freeing memory meanwhile must not read as negative
        return max(0, pynvml.nvmlDeviceGetMemoryInfo(handle).used - baseline)

    def process_used() -> int:
        procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        return sum(p.usedGpuMemory or 0 for p in procs if p.pid == pid)

    return {"gpu_nvml_used": device_used, "gpu_nvml_process": process_used}


def torch_cuda_peaks() -> dict[str, float]:
    """torch's caching-allocator peaks, for PyTorch rows on CUDA; {} when torch or CUDA is absent.
    Never imports torch itself: an ONNX Runtime row must not pay for it."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    return {"gpu_max_memory_allocated_mb": mb(torch.cuda.max_memory_allocated()),
            "gpu_max_memory_reserved_mb": mb(torch.cuda.max_memory_reserved())}
