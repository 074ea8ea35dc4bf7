"""PyTorch eager inference: eval mode, inference_mode, fixed intra-op threads, one inter-op thread."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import torch


class TorchRuntime:
    name = "pytorch"

    def __init__(self, model_dir: Path, device: str, threads: int):
        from transformers import AutoModelForSequenceClassification

        torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir, use_safetensors=True)
        self.model.to(self.device).eval()
        accepted = inspect.signature(self.model.forward).parameters
        self.input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]
        self.params = sum(p.numel() for p in self.model.parameters())

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
