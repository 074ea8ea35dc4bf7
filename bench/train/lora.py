"""LoRA through PEFT: wrap a sequence classifier before training, merge the adapter into its weights after.

The merged model is a plain Hugging Face model, so export, quantization, OpenVINO and every measurement
treat it like a fully fine-tuned one. The merge is checked against the unmerged PEFT model on dev
examples before anything is saved.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from bench.common.errors import BenchError
from bench.spec.training import LoraConfig, target_modules_error, unmatched_target_modules

log = logging.getLogger(__name__)

# Largest |Δlogit| tolerated between the PEFT model and its merge, relative to the largest |logit| (at least
# 1): float32 rounding of W + B·A moves logits by ~1e-6 on CPU.
MERGE_RTOL = 1e-4


def adaptable_modules(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Embedding))]


def with_lora(model, cfg: LoraConfig, field: str, seed: int):
    """The model wrapped by PEFT for sequence classification: LoRA on the target modules, the task head
    (`classifier`) trained in full, everything else frozen."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType, get_peft_model

    names = adaptable_modules(model)
    missing = unmatched_target_modules(names, cfg.target_modules)
    if missing:
        raise target_modules_error(field, "this model", names, missing)
    torch.manual_seed(seed)  # LoRA's A matrices are drawn at random
    peft_config = PeftLoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                 target_modules=list(cfg.target_modules), bias=cfg.bias)
    return get_peft_model(model, peft_config)


def is_peft(model) -> bool:
    return hasattr(model, "merge_and_unload") and hasattr(model, "peft_config")


def parameter_counts(model) -> dict:
    """Trainable and total parameters as training saw them (LoRA: the adapters and the head)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable_params": trainable, "train_params_total": total}


@torch.no_grad()
def merge_adapter(peft_model, batch: dict) -> tuple[nn.Module, dict]:
    """The base model with the adapter merged in, and the parity of its logits with the PEFT model's on
    `batch` (tokenized dev examples). A merge that changes the answer is an error, not a model."""
    peft_model.eval()
    before = peft_model(**batch).logits.float()
    merged = peft_model.merge_and_unload()
    merged.eval()
    after = merged(**batch).logits.float()
    diff = float((before - after).abs().max())
    agree = float((before.argmax(-1) == after.argmax(-1)).float().mean()) if before.shape[-1] > 1 else None
    bound = MERGE_RTOL * max(1.0, float(before.abs().max()))
    if diff > bound:
        raise BenchError(f"LoRA merge: logits moved by {diff:.2e} (> {bound:.2e}) between the PEFT model and its "
                         "merged weights")
    log.info("LoRA merged into the weights: max |Δlogit| %.2e on %d dev examples", diff, len(before))
    return merged, {"merge_parity_max_abs_diff": diff, "merge_parity_label_agreement": agree,
                    "merge_parity_samples": len(before)}
