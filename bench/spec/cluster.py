"""The suite's `cluster:` section, read only by `bench run --cluster`: the targets to measure on.

A target is a kind of machine (an AVX-512 VNNI CPU, an AVX2-only CPU, a T4), named by a Ray custom
resource that each of its nodes declares with one unit (`ray start --resources='{"avx2": 1}'`). A
measurement asks for that one unit, so one node measures one variant at a time: no two measurements
share a node's cores.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from bench.spec.training import _Strict

ResourceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class TargetConfig(_Strict):
    resource: ResourceName | None = None  # the Ray custom resource its nodes declare (default: the target's name)


class ClusterConfig(_Strict):
    # target name -> how its nodes are found; every variant is measured on every target that can run it
    targets: Annotated[dict[ResourceName, TargetConfig], Field(min_length=1)]
    # Builds (training, export, quantization) run once per seed as one cluster task, on a node declaring this
    # resource when set (a build node), else wherever Ray places it.
    build_resource: ResourceName | None = None
    # A measurement whose node or worker died is run again, on another node of the same target when there is
    # one, at most this many times; then its row is `failed` with every attempt's node and error.
    retries: Annotated[int, Field(ge=0, le=10)] = 1
    # Nodes that share no folder: the build node publishes every artifact at this fsspec URL (s3://bucket/prefix
    # with s3fs, gs:// with gcsfs, file:///mnt/share/...), each node fetches what it measures into its own
    # cache at the same path and checks each file's sha256 (bench/store/mirror.py). Unset: the cache is a
    # folder every node mounts at the same path.
    artifact_url: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _resources_distinct(self) -> ClusterConfig:
        seen: dict[str, str] = {}
        for name, target in self.targets.items():
            resource = target.resource or name
            if resource in seen:
                raise ValueError(f"targets.{name}.resource: {resource!r} is target {seen[resource]!r}'s too")
            seen[resource] = name
        return self

    def resource_of(self, target: str) -> str:
        return self.targets[target].resource or target
