"""PyTorch eager inference: eval mode, inference_mode, fixed intra-op threads, one inter-op thread.

Precisions: fp32; fp16/bf16 (CUDA; weights cast at load); int8-dynamic (CPU; torch.ao dynamic
quantization of every nn.Linear at load, deterministic, so the measured model is the one whose
parity the build recorded).
"""

from __future__ import annotations

import inspect
import io
from pathlib import Path

import numpy as np
import torch

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class TorchRuntime:
    name = "pytorch"

    def __init__(self, model_dir: Path, device: str, threads: int, precision: str = "fp32"):
        from transformers import AutoModelForSequenceClassification

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)  # like ORT's inter_op_num_threads = 1
        except RuntimeError:
            pass  # already fixed in this process (it can be set once, before any parallel work)
        self.device = torch.device(device)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, use_safetensors=True).eval()
        if precision == "int8-dynamic":
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
            buffer = io.BytesIO()
            torch.save(model.state_dict(), buffer)  # in memory only: the size a deployment would ship
            self.size_bytes = buffer.tell()
        elif precision in DTYPES:
            model = model.to(DTYPES[precision])
            self.size_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        elif precision != "fp32":
            raise ValueError(f"pytorch runtime does not support precision {precision!r}")
        self.model = model.to(self.device)
        accepted = inspect.signature(self.model.forward).parameters
        self.input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]
        self.params = sum(p.numel() for p in model.parameters()) + self._packed_params(model)

    @staticmethod
    def _packed_params(model) -> int:
        # Dynamically quantized Linear layers hold packed weights, not Parameters.
        total = 0
        for module in model.modules():
            if callable(getattr(module, "weight", None)) and not isinstance(module.weight, torch.Tensor):
                w, b = module.weight(), module.bias()
                total += w.numel() + (b.numel() if b is not None else 0)
        return total

    def prepare(self, encoding: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device)
                for k, v in encoding.items() if k in self.input_names}

    @torch.inference_mode()
    def run(self, native: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.model(**native).logits
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return logits

    def logits(self, output: torch.Tensor) -> np.ndarray:
        return output.float().cpu().numpy()
