"""PyTorch eager: the trained safetensors; int8-dynamic (CPU), fp16/bf16 (CUDA) converted at load."""

from __future__ import annotations

from pathlib import Path

from bench.backends.base import Format


class PyTorchFormat(Format):
    name = "pytorch"
    precisions = frozenset({"fp32", "fp16", "bf16", "int8-dynamic"})
    batch_dependent_precisions = frozenset({"int8-dynamic"})  # torch.ao dynamic quantization: one scale per tensor
    weight_suffixes = (".safetensors",)
    torch_cuda_memory = True
    search_cost = {"fp32": 0, "int8-dynamic": 2}

    def converts_at_load(self, precision):
        return precision != "fp32"

    def skip_reason(self, variant, measure):
        if variant.device == "cuda" and variant.precision == "int8-dynamic":
            return "pytorch int8-dynamic on cuda: torch.ao dynamic quantization has CPU kernels only"
        return None

    def build(self, compressor, variant, model):
        if variant.precision == "fp32":
            return model  # the trained folder itself
        from bench.backends.pytorch import recipes

        return recipes.converted(compressor, model, variant.precision, variant.device)

    def runtime(self, path: Path, device, threads, precision, gpu_provider):
        from bench.backends.pytorch.runtime import TorchRuntime

        return TorchRuntime(path, device, threads, precision)
