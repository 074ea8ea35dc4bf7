"""Artifact cache keyed by content hash.

An artifact's key hashes its own spec plus the keys of what it was built from, so changing one
field rebuilds only what depends on it. A build writes into a private temporary folder; the
manifest (with every file's sha256) is written last and the folder is renamed into place, so a
killed build never leaves something that looks finished. On reuse the files are checked against
the manifest; a changed or truncated file is reported by name and the artifact is rebuilt.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench import __version__
from bench.common.errors import BenchError
from bench.common.paths import confined

log = logging.getLogger(__name__)

# Bump when a change in bench alters what a build produces, so old cache entries are not reused.
ARTIFACT_FORMAT = 1
MANIFEST = "manifest.json"


def canonical_hash(obj) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@contextmanager
def file_lock(path: Path, waiting_message: str | None = None):
    """An exclusive advisory lock (flock) on `path`, released on exit or when the process dies."""
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting_message:
                log.info(waiting_message)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class Artifact:
    kind: str
    key: str
    path: Path
    manifest: dict = field(repr=False)
    reused: bool = False

    @property
    def info(self) -> dict:
        return self.manifest.get("info", {})

    @property
    def weights_dir(self) -> Path:
        """Where the runtime loads weights from: the artifact itself, or (PyTorch conversions done at
        load time) the trained model it points to."""
        return Path(self.info.get("weights_dir") or self.path)

    @property
    def build_time_s(self) -> float:
        return self.manifest["build_time_s"]


def _corrupt_files(path: Path, manifest: dict) -> list[str]:
    bad = []
    for name, expected in manifest.get("files", {}).items():
        f = path / name
        if not f.is_file() or file_sha256(f) != expected:
            bad.append(str(f))
    return bad


def folder_problem(folder: Path) -> str | None:
    """Why a published artifact folder cannot be read as it is (no manifest, or the first file that does not
    match the sha256 its manifest records), or None: what a cluster node checks before it measures."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return f"{folder}: no {MANIFEST} on this node (is the cache shared with it, or cluster.artifact_url set?)"
    bad = _corrupt_files(folder, json.loads(manifest.read_text()))
    return f"{bad[0]} does not match its sha256 in {MANIFEST}" if bad else None


class ArtifactStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def key(self, kind: str, spec: dict, parents: list[Artifact]) -> str:
        return canonical_hash(
            {"format": ARTIFACT_FORMAT, "kind": kind, "spec": spec, "parents": [p.key for p in parents]}
        )[:16]

    def load(self, kind: str, key: str) -> Artifact | None:
        path = self.root / f"{kind}-{key}"
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            return None
        manifest = json.loads(manifest_path.read_text())
        bad = _corrupt_files(path, manifest)
        if bad:
            log.warning("artifact %s-%s: %s does not match its recorded hash; rebuilding", kind, key, bad[0])
            return None
        return Artifact(kind, key, path, manifest, reused=True)

    def work_dir(self, name: str) -> Path:
        """Where a training build keeps its checkpoints: it survives a killed process, so the next
        attempt resumes; it is removed once the artifact is published."""
        return self.root / ".work" / name

    def get_or_build(
        self, kind: str, spec: dict, parents: list[Artifact], build: Callable[..., dict], work_dir: bool = False
    ) -> Artifact:
        """Reuse the finished artifact for this key, or call build(tmp_dir) -> info (build(tmp_dir,
        work_dir) with work_dir=True) and publish it. Under torch.distributed every rank builds
        (DDP training needs them all), and rank 0 alone publishes."""
        key = self.key(kind, spec, parents)
        name = f"{kind}-{key}"
        ddp = _distributed()
        if ddp is not None:
            return self._build_distributed(kind, key, spec, parents, build, work_dir, *ddp)
        # A second `bench run` building the same artifact waits here, then reuses the result.
        with file_lock(self.root / f".{name}.lock", f"waiting for another process building {name}"):
            found = self.load(kind, key)
            if found is not None:
                log.info("reuse %s (built in %.1f s)", name, found.build_time_s)
                return found
            # Leftovers of builds killed mid-way (any pid): nobody else can be building `name` now.
            for stale in self.root.glob(f".tmp-{name}-*"):
                shutil.rmtree(stale, ignore_errors=True)
            tmp, start, info = self._run_build(name, build, work_dir)
            return self._publish(kind, key, spec, parents, tmp, info, start, work_dir)

    def _run_build(self, name: str, build: Callable[..., dict], work_dir: bool) -> tuple[Path, float, dict]:
        tmp = self.root / f".tmp-{name}-{os.getpid()}"
        tmp.mkdir(parents=True)
        log.info("build %s", name)
        start = time.perf_counter()
        try:
            info = (build(tmp, self.work_dir(name)) if work_dir else build(tmp)) or {}
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return tmp, start, info

    def _build_distributed(self, kind, key, spec, parents, build, work_dir, rank: int, barrier) -> Artifact:
        name = f"{kind}-{key}"
        barrier()
        found = self.load(kind, key)
        if found is not None:
            return found
        if rank == 0:
            for stale in self.root.glob(f".tmp-{name}-*"):
                shutil.rmtree(stale, ignore_errors=True)
        barrier()
        tmp, start, info = self._run_build(name, build, work_dir)
        barrier()  # every rank has finished training before rank 0 publishes
        if rank == 0:
            self._publish(kind, key, spec, parents, tmp, info, start, work_dir)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        barrier()
        return self.load(kind, key)

    def _publish(self, kind, key, spec, parents, tmp: Path, info: dict, start: float, work_dir: bool) -> Artifact:
        name = f"{kind}-{key}"
        final = self.root / name
        manifest = {
            "kind": kind,
            "key": key,
            "spec": spec,
            "parents": {p.kind: p.key for p in parents},
            "info": info,
            "build_time_s": round(time.perf_counter() - start, 3),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "bench_version": __version__,
            "files": {
                str(f.relative_to(tmp)): file_sha256(f)
                for f in sorted(tmp.rglob("*"))
                if f.is_file() and f.name != MANIFEST
            },
        }
        write_json_atomic(tmp / MANIFEST, manifest)  # last: its presence means "finished"
        shutil.rmtree(final, ignore_errors=True)  # an unfinished or corrupt earlier attempt
        os.rename(tmp, final)
        if work_dir:
            shutil.rmtree(self.work_dir(name), ignore_errors=True)  # checkpoints: no longer needed
        log.debug("built %s in %.1f s", name, manifest["build_time_s"])
        return Artifact(kind, key, final, manifest, reused=False)


@dataclass(frozen=True)
class Planned:
    """One get_or_build call of a dry run: `cached` when `bench run` would reuse it (from the cache, or
    `earlier` when an earlier step of the same run builds it first)."""

    kind: str
    key: str
    cached: bool
    earlier: bool = False

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.key}"


class DryRunStore(ArtifactStore):
    """The same keys and cache lookups as ArtifactStore (so `cached` is exactly what a build would reuse),
    but nothing is built or written: each call is recorded in `planned` and an artifact that does not
    exist yet comes back as a placeholder (its path is where it would be published). A child's key needs
    only its parents' keys, and build closures that read parent files are never called."""

    def __init__(self, root: Path):
        self.root = Path(root)  # not created: a dry run writes nothing
        self.planned: list[Planned] = []
        self._seen: dict[str, Artifact] = {}

    def get_or_build(self, kind: str, spec: dict, parents: list[Artifact], build: Callable[..., dict],
                     work_dir: bool = False) -> Artifact:
        key = self.key(kind, spec, parents)
        name = f"{kind}-{key}"
        if name in self._seen:  # a real run built (or found) it a moment ago: reused now
            self.planned.append(Planned(kind, key, cached=True, earlier=not self._seen[name].reused))
            return replace(self._seen[name], reused=True)
        found = self.load(kind, key)
        artifact = found or Artifact(kind, key, self.root / name, {"build_time_s": 0.0, "info": {}, "planned": True})
        self.planned.append(Planned(kind, key, cached=found is not None))
        self._seen[name] = artifact
        return artifact


def cache_root(results_root: Path, cache_dir: Path | str | None = None) -> Path:
    """The artifact cache: `cache_dir` when given (any folder the user chooses, e.g. one CI restores
    between runs), else <results root>/artifacts as always."""
    if cache_dir:
        path = Path(cache_dir).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise BenchError(f"--cache-dir: {path} exists and is not a directory")
        return path
    return confined(results_root, "artifacts")


def _distributed():
    """(rank, barrier) when running under an initialised torch.distributed process group."""
    import sys

    if "torch" not in sys.modules:  # nothing initialised a process group if torch was never imported
        return None
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return dist.get_rank(), dist.barrier
