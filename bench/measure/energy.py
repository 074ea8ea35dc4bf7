"""Energy from real counters only: Linux powercap (Intel and AMD RAPL: package and DRAM domains), AMD's
`amd_energy` hwmon driver (per-socket), and NVML's total-energy counter on NVIDIA GPUs.

A pass reads every counter before and after and divides by the inferences it made. Where no counter is
readable the reason is kept and the row says `unavailable: <reason>`: bench never substitutes an estimate
(a TDP times the wall time) for a measurement. The counters are machine-wide: they include every other
process and the idle power of the package, which is why a row records which counters it read.

pyRAPL (powercap only, Intel-centred, unmaintained since 2021), zeus (GPU first; its CPU path is the same
powercap files) and CodeCarbon (falls back to a TDP estimate when it cannot read a counter) were checked;
the sysfs files and NVML are read directly so the wrap-around and the unreadable cases are ours to say.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SYSFS = Path(os.environ.get("BENCH_SYSFS_ROOT", "/sys"))  # tests point this at a fake tree


@dataclass
class Counter:
    """One monotonic energy counter in joules; `wrap_j` is where it wraps to 0 (None: it does not)."""

    name: str
    path: Path | None
    scale_j: float  # joules per unit of the file's number
    wrap_j: float | None
    nvml_handle: object = None

    def read_j(self) -> float:
        if self.nvml_handle is not None:
            import pynvml

            return pynvml.nvmlDeviceGetTotalEnergyConsumption(self.nvml_handle) * 1e-3  # mJ
        return int(self.path.read_text().strip()) * self.scale_j


def _readable(path: Path) -> str | None:
    """None when the counter file can be read, else why not (one clause)."""
    try:
        int(path.read_text().strip())
    except PermissionError:
        return f"{path} is not readable by this user (root, or a udev rule granting read, is needed)"
    except (OSError, ValueError) as exc:
        return f"{path}: {type(exc).__name__}: {exc}"
    return None


def powercap_counters(root: Path = SYSFS) -> tuple[list[Counter], list[str]]:
    """RAPL zones: each package zone (`package-N`) and each DRAM zone (a sub-zone, or top-level on some
    servers); cores and uncore are inside the package and are not added again."""
    base = root / "class" / "powercap"
    if not base.is_dir():
        return [], [f"powercap: {base} does not exist (no RAPL driver, or a VM that does not expose it)"]
    counters, problems = [], []
    for zone in sorted(base.glob("*-rapl:*")):
        name_file = zone / "name"
        domain = name_file.read_text().strip() if name_file.is_file() else zone.name
        if not (domain.startswith("package") or domain == "dram"):
            continue
        energy = zone / "energy_uj"
        why = _readable(energy)
        if why:
            problems.append(f"powercap: {why}")
            continue
        wrap_file = zone / "max_energy_range_uj"
        wrap = int(wrap_file.read_text().strip()) * 1e-6 if wrap_file.is_file() else None
        counters.append(Counter(f"powercap:{zone.name} ({domain})", energy, 1e-6, wrap))
    if not counters and not problems:
        problems.append(f"powercap: no package or dram zone under {base}")
    return counters, problems


def hwmon_counters(root: Path = SYSFS) -> tuple[list[Counter], list[str]]:
    """AMD's amd_energy driver: one `energyN_input` (µJ) per socket (`Esocket*`) and per core; the sockets'."""
    base = root / "class" / "hwmon"
    drivers = [d for d in sorted(base.glob("hwmon*")) if (d / "name").is_file()
               and (d / "name").read_text().strip() == "amd_energy"] if base.is_dir() else []
    if not drivers:
        return [], ["hwmon: no amd_energy driver"]
    counters, problems = [], []
    for d in drivers:
        for label in sorted(d.glob("energy*_label")):
            if not label.read_text().strip().startswith("Esocket"):
                continue
            energy = d / label.name.replace("_label", "_input")
            why = _readable(energy)
            if why:
                problems.append(f"hwmon: {why}")
                continue
            # The driver accumulates the 32-bit hardware counter into 64 bits: no wrap seen from here.
            counters.append(Counter(f"hwmon:{d.name}/{label.read_text().strip()}", energy, 1e-6, None))
    return counters, problems


def nvml_counters() -> tuple[list[Counter], list[str]]:
    """NVIDIA GPUs from Volta on: total energy since the driver loaded, in mJ."""
    try:
        import pynvml

        pynvml.nvmlInit()
        counters = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # raises where unsupported
            counters.append(Counter(f"nvml:GPU{i}", None, 1e-3, None, nvml_handle=handle))
        return counters, [] if counters else ["nvml: no GPU"]
    except ImportError:
        return [], ["nvml: nvidia-ml-py is not installed"]
    except Exception as exc:  # pynvml.NVMLError and its many subclasses: no driver, not supported
        return [], [f"nvml: {type(exc).__name__}: {exc}"]


def find_counters(device: str, root: Path = SYSFS) -> tuple[list[Counter], str | None]:
    """The counters for a variant on `device` (CPU packages and DRAM; on cuda the GPUs as well), and when
    there is none, why not (every source's reason, joined)."""
    counters, problems = [], []
    for found, why in (powercap_counters(root), hwmon_counters(root)):
        counters += found
        problems += why
    if any(c.name.startswith("hwmon:") for c in counters):  # one source for the CPU: powercap if both
        if any(c.name.startswith("powercap:") for c in counters):
            counters = [c for c in counters if not c.name.startswith("hwmon:")]
    if device == "cuda":
        found, why = nvml_counters()
        counters += found
        problems += why
    return counters, None if counters else "; ".join(problems)


class EnergyMeter:
    """Joules between `start()` and `stop()`, per counter, wrap-around included (one wrap at most: RAPL's
    package range is 2^32 µJ, over an hour at 1 kW, far longer than any pass)."""

    def __init__(self, counters: list[Counter], unavailable: str | None):
        self.counters, self.unavailable = counters, unavailable
        self._start: list[float] = []

    @classmethod
    def for_device(cls, device: str, root: Path = SYSFS) -> EnergyMeter:
        return cls(*find_counters(device, root))

    def start(self) -> None:
        self._start = [c.read_j() for c in self.counters]

    def stop(self) -> dict[str, float]:
        out = {}
        for c, before in zip(self.counters, self._start, strict=True):
            delta = c.read_j() - before
            if delta < 0 and c.wrap_j:
                delta += c.wrap_j
            out[c.name] = delta
        return out

    def fields(self, joules: dict[str, float] | None, inferences: int, prefix: str = "energy") -> dict:
        """Row fields: millijoules per inference summed over the counters, the counters read; or the reason
        there is none."""
        if self.unavailable is not None or joules is None:
            return {f"{prefix}_status": f"unavailable: {self.unavailable}"}
        return {f"{prefix}_status": "measured", f"{prefix}_counters": sorted(joules),
                f"{prefix}_mj_per_inference": round(1e3 * sum(joules.values()) / inferences, 4)}
