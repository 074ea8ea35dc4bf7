import math

import pytest
import torch

from bench.common.errors import BenchError
from bench.tasks.sources import load_for_classification, parse_source
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


# ---------------------------------------------------------------- hidden, attention, general terms

def test_hidden_cosine_loss_by_hand():
    from bench.train.losses import hidden_state_loss

    # batch 1, 3 positions (the last is padding), width 2; student 1 layer, teacher 2 layers, map [1].
    s = (torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]]), torch.tensor([[[1.0, 1.0], [1.0, 0.0], [9.0, -9.0]]]))
    t = (torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]]), torch.zeros(1, 3, 2),
         torch.tensor([[[1.0, 1.0], [0.0, 1.0], [1.0, 1.0]]]))
    mask = torch.tensor([[1, 1, 0]])
    # embeddings: cos = 1 and 0 -> losses 0, 1 -> mean 0.5; layer 0 vs teacher layer 1 (index 2): cos = 1, 0 -> 0.5
    assert hidden_state_loss(s, t, [1], mask, "cosine").item() == pytest.approx(0.5)
    # mse: embeddings (0 + (1+1)/2)/2 = 0.5; layer: (0 + (1+1)/2)/2 = 0.5
    assert hidden_state_loss(s, t, [1], mask, "mse").item() == pytest.approx(0.5)


def test_hidden_loss_needs_projection_for_other_widths():
    from bench.train.losses import hidden_state_loss

    s, t = (torch.ones(1, 2, 3), torch.ones(1, 2, 3)), (torch.ones(1, 2, 4), torch.ones(1, 2, 4))
    with pytest.raises(ValueError, match="no projection"):
        hidden_state_loss(s, t, [0], torch.ones(1, 2), "cosine")
    proj = torch.nn.ModuleList(torch.nn.Linear(3, 4) for _ in range(2))
    assert hidden_state_loss(s, t, [0], torch.ones(1, 2), "mse", proj).item() >= 0


def test_attention_loss_by_hand_excludes_padding():
    from bench.train.losses import attention_loss

    # batch 1, 1 head, 3 positions, the third is padding: only the 2x2 real block counts.
    a_s = torch.tensor([[[[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.3, 0.3, 0.4]]]])
    a_t = torch.tensor([[[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]])
    expected = (0.25 + 0.25 + 0 + 0) / 4
    got = attention_loss((a_s,), (torch.zeros_like(a_t), a_t), [1], torch.tensor([[1, 1, 0]]))
    assert got.item() == pytest.approx(expected)


def test_general_distillation_loss_by_hand():
    from bench.train.losses import general_distillation_loss, soft_loss

    s_logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    t_logits = torch.tensor([[[0.0, 2.0, 0.0], [5.0, 5.0, 5.0]]])
    labels = torch.tensor([[1, -100]])  # position 0 masked (target token 1), position 1 not
    h_s, h_t = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]]), torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])
    mask = torch.tensor([[1, 1]])
    total, terms = general_distillation_loss(s_logits, t_logits, labels, h_s, h_t, mask, 2.0, 5.0, 2.0, 1.0)
    ce = soft_loss(s_logits[0, :1], t_logits[0, :1], 2.0).item()  # the masked position only
    mlm = -math.log(math.exp(0) / (math.exp(2) + 2))
    cos = (1 + 0) / 2  # (1 - 0) and (1 - 1)
    assert terms["loss_ce"].item() == pytest.approx(ce)
    assert terms["loss_mlm"].item() == pytest.approx(mlm, rel=1e-6)
    assert terms["loss_cos"].item() == pytest.approx(cos)
    assert total.item() == pytest.approx(5 * ce + 2 * mlm + 1 * cos, rel=1e-6)


def test_uniform_layer_map():
    from bench.train.losses import uniform_layer_map

    assert uniform_layer_map(3, 6) == [1, 3, 5]
    assert uniform_layer_map(6, 12) == [1, 3, 5, 7, 9, 11]
    assert uniform_layer_map(2, 2) == [0, 1]


def test_random_init_has_teacher_shape_and_fresh_weights():
    from bench.train.distill import init_random_student

    teacher = _teacher(4)
    student = init_random_student(teacher, 2, seed=3)
    assert student.config.num_hidden_layers == 2 and student.config.hidden_size == teacher.config.hidden_size
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(student.state_dict()[name], teacher.state_dict()[name])
    again = init_random_student(teacher, 2, seed=3)
    assert torch.equal(again.state_dict()[name], student.state_dict()[name])  # seeded


def test_projection_trains_and_is_dropped(tmp_path):
    """A student narrower than the teacher learns through the hidden-state loss with a projection;
    the projection is not saved with the student."""
    from conftest import FIXTURE_DATA

    from bench.data.load import load_task_data
    from bench.spec.suite import DataConfig, DistillConfig
    from bench.train.distill import distill

    teacher_src = parse_source("tiny:layers=2,hidden=32,heads=2,intermediate=64,vocab=200")
    data = load_task_data(DataConfig(path=FIXTURE_DATA / "sst2", max_length=32), "sst2", 0)
    teacher, tokenizer = load_for_classification(teacher_src, 2, corpus=data.sentences("train"), seed=1)
    student_src = parse_source("tiny:layers=1,hidden=16,heads=2,intermediate=32,vocab=200")
    student, _ = load_for_classification(student_src, 2, corpus=data.sentences("train"), seed=1)
    student.resize_token_embeddings(len(tokenizer))  # share the teacher's tokenizer
    cfg = DistillConfig(epochs=1, lr=1e-3, batch_size=32, alpha_soft=0, alpha_hard=0.5, alpha_hidden=1.0,
                        hidden_projection=True, max_train_samples=64)
    info = distill(student, tokenizer, data, None, cfg, 32, 0, tmp_path / "out", teacher=teacher)
    assert info["loss"] == "hard+hidden" and info["layer_map"] == [1] and info["train_rows"] == 64
    assert not hasattr(student, "distill_projection")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "out" / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "distill_projection" in k]
        assert f.get_tensor("bert.embeddings.word_embeddings.weight").shape[1] == 16
