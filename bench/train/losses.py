"""Distillation loss terms, as pure functions of tensors (tested against hand-computed values).

Task distillation (Hinton et al. 2015; TinyBERT, Jiao et al. 2020):
  alpha_soft·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) + alpha_hard·CE(y, z_s)
  + alpha_hidden·mean over mapped layers of (1 − cos) or MSE per real token (embeddings included)
  + alpha_attn·mean over mapped layers of the MSE between attention maps over real query/key pairs.
The T² factor keeps soft-label gradients on the scale of the hard ones when T changes.
A regression (one output, e.g. STS-B) has no distribution to soften: its soft term is the MSE between
student and teacher outputs and its hard term the MSE to the gold score (no temperature).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T²·KL(teacher ‖ student) at temperature T, averaged over the rows."""
    return F.kl_div(
        F.log_softmax(student_logits / temperature, dim=-1),
        F.log_softmax(teacher_logits / temperature, dim=-1),
        reduction="batchmean",
        log_target=True,
    ) * temperature**2


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                     regression: bool = False) -> torch.Tensor:
    """The soft term: soft_loss at T, or for a regression the MSE between the outputs (T unused)."""
    if regression:
        return F.mse_loss(student_logits, teacher_logits)
    return soft_loss(student_logits, teacher_logits, temperature)


def hard_loss(student_logits: torch.Tensor, labels: torch.Tensor, regression: bool = False) -> torch.Tensor:
    """The hard term: cross-entropy with the label ids, or for a regression the MSE to the gold scores."""
    if regression:
        return F.mse_loss(student_logits.reshape(-1), labels.reshape(-1).to(student_logits.dtype))
    return F.cross_entropy(student_logits, labels)


def distillation_loss(student_logits, teacher_logits, labels, temperature: float, alpha_soft: float,
                      alpha_hard: float, regression: bool = False) -> torch.Tensor:
    return (alpha_soft * soft_target_loss(student_logits, teacher_logits, temperature, regression)
            + alpha_hard * hard_loss(student_logits, labels, regression))


def uniform_layer_map(n_student: int, n_teacher: int) -> list[int]:
    """Student layer i <-> teacher layer (i+1)·N/M − 1 (0-based): evenly spread, last meets last."""
    return [round((i + 1) * n_teacher / n_student) - 1 for i in range(n_student)]


def hidden_pairs(layer_map: list[int]) -> list[tuple[int, int]]:
    """(student, teacher) indices into `hidden_states` tuples, whose entry 0 is the embeddings."""
    return [(0, 0)] + [(i + 1, t + 1) for i, t in enumerate(layer_map)]


def hidden_state_loss(student_hidden, teacher_hidden, layer_map: list[int], attention_mask: torch.Tensor,
                      kind: str = "cosine", projections=None) -> torch.Tensor:
    """Mean over (embeddings + mapped layers) of the per-token loss averaged over real tokens.
    `projections[k]` (optional) maps the k-th student state to the teacher's width first."""
    mask = attention_mask.to(student_hidden[0].dtype)  # (batch, seq)
    terms = []
    for k, (s, t) in enumerate(hidden_pairs(layer_map)):
        hs, ht = student_hidden[s], teacher_hidden[t]
        if projections is not None:
            hs = projections[k](hs)
        if hs.shape[-1] != ht.shape[-1]:
            raise ValueError(f"hidden widths differ ({hs.shape[-1]} vs {ht.shape[-1]}) and there is no projection")
        if kind == "cosine":
            per_token = 1 - F.cosine_similarity(hs, ht, dim=-1)
        elif kind == "mse":
            per_token = (hs - ht).pow(2).mean(dim=-1)
        else:
            raise ValueError(f"unknown hidden loss {kind!r}")
        terms.append((per_token * mask).sum() / mask.sum())
    return torch.stack(terms).mean()


def attention_loss(student_attentions, teacher_attentions, layer_map: list[int],
                   attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over mapped layers of the MSE between attention maps (batch, heads, query, key),
    counting only pairs where both the query and the key are real tokens: padded rows hold
    arbitrary values in both models and would add noise, not signal."""
    mask = attention_mask.to(student_attentions[0].dtype)
    pair = mask[:, None, :, None] * mask[:, None, None, :]  # (batch, 1, seq, seq)
    terms = []
    for i, t in enumerate(layer_map):
        a_s, a_t = student_attentions[i], teacher_attentions[t]
        if a_s.shape != a_t.shape:
            raise ValueError(f"attention maps differ in shape ({tuple(a_s.shape)} vs {tuple(a_t.shape)})")
        heads = a_s.shape[1]
        terms.append(((a_s - a_t).pow(2) * pair).sum() / (pair.sum() * heads))
    return torch.stack(terms).mean()


def general_distillation_loss(student_logits, teacher_logits, labels, student_last_hidden, teacher_last_hidden,
                              attention_mask, temperature: float, alpha_ce: float, alpha_mlm: float,
                              alpha_cos: float) -> tuple[torch.Tensor, dict]:
    """DistilBERT (Sanh et al. 2019): soft cross-entropy against the teacher's MLM distribution at the
    masked positions, the MLM loss on the labels, and a cosine loss between last hidden states over
    real tokens. Returns the total and each term (for logging)."""
    masked = labels != -100
    s, t = student_logits[masked], teacher_logits[masked]
    ce = soft_loss(s, t, temperature) if masked.any() else student_logits.sum() * 0
    mlm = F.cross_entropy(student_logits.view(-1, student_logits.shape[-1]), labels.view(-1), ignore_index=-100) \
        if masked.any() else student_logits.sum() * 0
    real = attention_mask.bool()
    cos = (1 - F.cosine_similarity(student_last_hidden[real], teacher_last_hidden[real], dim=-1)).mean()
    total = alpha_ce * ce + alpha_mlm * mlm + alpha_cos * cos
    return total, {"loss_ce": ce.detach(), "loss_mlm": mlm.detach(), "loss_cos": cos.detach()}
