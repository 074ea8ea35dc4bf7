import math

import pytest
import torch

from bench.errors import BenchError
from bench.models import load_for_classification, parse_source
from bench.train.distill import init_student_from_teacher
from bench.train.losses import distillation_loss


def test_loss_matches_hand_computation():
    s = torch.tensor([[1.0, -1.0], [0.5, 0.25]])
    t = torch.tensor([[2.0, 0.0], [-1.0, 1.0]])
    y = torch.tensor([0, 1])
    T, a_soft, a_hard = 2.0, 0.3, 0.7

    def softmax(row):
        e = [math.exp(x) for x in row]
        return [x / sum(e) for x in e]

    kl = 0.0
    for srow, trow in zip(s.tolist(), t.tolist(), strict=True):
        p = softmax([x / T for x in trow])
        q = softmax([x / T for x in srow])
        kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    kl /= 2
    ce = -(math.log(softmax(s[0].tolist())[0]) + math.log(softmax(s[1].tolist())[1])) / 2
    expected = a_soft * T * T * kl + a_hard * ce
    got = distillation_loss(s, t, y, T, a_soft, a_hard).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_soft_term_is_zero_when_student_equals_teacher():
    z = torch.randn(4, 2)
    assert distillation_loss(z, z.clone(), torch.zeros(4, dtype=torch.long), 2.0, 1.0, 0.0).item() == pytest.approx(0, abs=1e-7)


def _teacher(layers=4):
    src = parse_source(f"tiny:layers={layers},hidden=32,heads=2,intermediate=64,vocab=100")
    model, _ = load_for_classification(src, 2, corpus=["a b c d e"] * 5, seed=1)
    return model


def test_student_copies_are_bit_identical():
    teacher = _teacher(4)
    student = init_student_from_teacher(teacher, [0, 2, 3])
    assert student.config.num_hidden_layers == 3
    t, s = teacher.state_dict(), student.state_dict()
    for i, j in enumerate([0, 2, 3]):
        for name, value in s.items():
            if f"encoder.layer.{i}." in name:
                assert torch.equal(value, t[name.replace(f"encoder.layer.{i}.", f"encoder.layer.{j}.")]), name
    for name in s:
        if "encoder.layer." not in name:
            assert torch.equal(s[name], t[name]), name  # embeddings, pooler, classifier
    # Copies, not shared storage: training the student must not move the teacher.
    assert s["bert.embeddings.word_embeddings.weight"].data_ptr() != t["bert.embeddings.word_embeddings.weight"].data_ptr()


def test_layer_out_of_range():
    with pytest.raises(BenchError, match="student.layers: index 4 is out of range for a 4-layer teacher"):
        init_student_from_teacher(_teacher(4), [0, 4])
