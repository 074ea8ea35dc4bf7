"""The artifact cache mirrored at an fsspec URL (`cluster.artifact_url`: `s3://bucket/prefix` with s3fs, `gs://`
with gcsfs, `file:///mnt/nfs/cache`, ...), for clusters whose nodes share no folder.

The build node publishes each artifact folder there once it is built: its files, then its manifest last, so a
manifest at the URL means a complete copy (the local cache's own rule). A node that needs a folder fetches it
into its local cache at the same path, into a temporary folder renamed into place, and checks every file
against the sha256 its manifest records before anything reads it.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import shutil
from pathlib import Path

from bench.common.errors import BenchError
from bench.store.artifacts import MANIFEST, Artifact, ArtifactStore, file_lock, file_sha256, folder_problem

log = logging.getLogger(__name__)


def _filesystem(url: str):
    """(fsspec filesystem, root path) of `url`; a scheme whose package is missing is one line."""
    try:
        import fsspec

        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise BenchError(f"cluster.artifact_url: {url}: {str(exc).splitlines()[0]}") from None
    return fs, root.rstrip("/")


def check_url(url: str) -> None:
    """Fail now, on the driver, if the URL's filesystem cannot be opened (a missing s3fs, a bad scheme)."""
    fs, root = _filesystem(url)
    try:
        fs.makedirs(root, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cluster.artifact_url: {url}: cannot create or open it: {exc}") from None


def publish(folder: Path, url: str) -> bool:
    """Upload a published artifact folder unless the URL holds a complete copy; True when it uploaded."""
    fs, root = _filesystem(url)
    remote = f"{root}/{folder.name}"
    if fs.exists(f"{remote}/{MANIFEST}"):
        return False
    fs.makedirs(remote, exist_ok=True)  # a folder whose manifest lists no file (a converted-at-load artifact)
    for name in json.loads((folder / MANIFEST).read_text())["files"]:
        target = f"{remote}/{name}"
        fs.makedirs(posixpath.dirname(target), exist_ok=True)
        fs.put_file(str(folder / name), target)
    fs.put_file(str(folder / MANIFEST), f"{remote}/{MANIFEST}")  # last: a complete copy from here on
    return True


def published(name: str, url: str) -> bool:
    """Whether the URL holds a complete copy of the artifact folder `name` (its manifest is written last)."""
    fs, root = _filesystem(url)
    return fs.exists(f"{root}/{name}/{MANIFEST}")


class MirroredStore(ArtifactStore):
    """The local cache backed by the mirror, for a node that builds (the build node, a GPU target's node): an
    artifact missing here but published at the URL is fetched and checked rather than built again (a build
    node with an empty cache, a GPU node building on the models the build node trained), and every artifact
    it builds or finds here is published there."""

    def __init__(self, root: Path, url: str):
        super().__init__(root)
        self.url = url

    def load(self, kind: str, key: str) -> Artifact | None:
        found = super().load(kind, key)
        folder = self.root / f"{kind}-{key}"
        if found is None and published(folder.name, self.url):
            fetch(folder, self.url)
            found = super().load(kind, key)
        elif found is not None:
            self._share(found)
        return found

    def _publish(self, *args, **kwargs) -> Artifact:
        return self._share(super()._publish(*args, **kwargs))

    def _share(self, artifact: Artifact) -> Artifact:
        if publish(artifact.path, self.url):
            log.info("published %s at %s", artifact.path.name, self.url)
        return artifact


def fetch(folder: Path, url: str) -> bool:
    """Make `folder` (in this node's local cache) a complete, checked copy of the URL's; True when it
    downloaded. A file that does not match its sha256 is an error naming it; nothing half-fetched stays."""
    if folder_problem(folder) is None:
        return False  # here already, every file matching its manifest
    folder.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(folder.parent / f".{folder.name}.fetch.lock"):  # two measurements of one node: one fetch
        if folder_problem(folder) is None:
            return False
        _download(folder, url)
    return True


def _download(folder: Path, url: str) -> None:
    fs, root = _filesystem(url)
    remote = f"{root}/{folder.name}"
    if not fs.exists(f"{remote}/{MANIFEST}"):
        raise BenchError(f"{url}/{folder.name}: not published there (no {MANIFEST})")
    tmp = folder.parent / f".tmp-fetch-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        fs.get_file(f"{remote}/{MANIFEST}", str(tmp / MANIFEST))
        for name, expected in json.loads((tmp / MANIFEST).read_text())["files"].items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(f"{remote}/{name}", str(tmp / name))
            if file_sha256(tmp / name) != expected:
                raise BenchError(f"{url}/{folder.name}/{name} does not match its sha256 in {MANIFEST}")
        shutil.rmtree(folder, ignore_errors=True)
        os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
