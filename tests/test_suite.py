import pytest

from bench.cli import main
from bench.common.errors import BenchError
from bench.spec.suite import load_suite

GOOD = """
name: ok
data: {source: glue-tsv, path: "DATA"}
teacher: {source: "tiny:layers=1", finetune: {lr: 5e-5}}
student: {layers: [0]}
variants:
  - {model: [teacher, student], format: pytorch}
"""


@pytest.fixture
def good(tmp_path):
    (tmp_path / "d").mkdir()
    return GOOD.replace("DATA", str(tmp_path / "d"))


def error_of(write_suite, text: str) -> str:
    path = write_suite(text)
    with pytest.raises(BenchError) as info:
        load_suite(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(str(path))
    return msg


def test_valid_suite_loads_with_defaults(write_suite, good):
    suite = load_suite(write_suite(good))
    assert suite.teacher.finetune.lr == 5e-5  # a YAML 1.2 float (PyYAML alone reads 5e-5 as a string)
    assert suite.variants[0].precision == ["fp32"] and suite.variants[0].device == ["cpu"]
    assert suite.student.distill.temperature == 2.0
    assert suite.measure.threads == [2]


def test_wrong_type_names_field_and_value(write_suite, good):
    msg = error_of(write_suite, good.replace("lr: 5e-5", "lr: fast"))
    assert msg.endswith("teacher.finetune.lr: expected a number, got 'fast'")


@pytest.mark.parametrize(("old", "new", "expect"), [
    ("lr: 5e-5", "lr: true", "teacher.finetune.lr: expected a number, got True"),  # lax mode made this 1.0
    ("lr: 5e-5", "lr: '5e-5'", "teacher.finetune.lr: expected a number, got '5e-5'"),  # quoted: a string
    ("name: ok", "name: 7", "name: expected a string, got 7"),
    ("layers: [0]", "layers: [true]", "student.layers[0]: expected an integer, got True"),
    ("layers: [0]", "layers: [0.0]", "student.layers[0]: expected an integer, got 0.0"),
    ("format: pytorch}", "format: pytorch, threads: '2'}", "variants[0].threads[0]: expected an integer, got '2'"),
])
def test_no_type_coercion(write_suite, good, old, new, expect):
    msg = error_of(write_suite, good.replace(old, new))
    assert msg.endswith(expect), msg


def test_unknown_key_is_an_error(write_suite, good):
    msg = error_of(write_suite, good.replace("student: {layers: [0]}", "student: {layers: [0], layres: [1]}"))
    assert msg.endswith("student.layres: unknown key")


def test_bad_enum_lists_the_choices(write_suite, good):
    msg = error_of(write_suite, good.replace("format: pytorch", "format: tflite"))
    assert "variants[0].format[0]" in msg and "'tflite'" in msg and "'onnx'" in msg


def test_missing_required_field(write_suite, good):
    msg = error_of(write_suite, good.replace('teacher: {source: "tiny:layers=1", finetune: {lr: 5e-5}}\n', ""))
    assert msg.endswith("teacher: required field is missing")


def test_missing_data_path(write_suite, good, tmp_path):
    msg = error_of(write_suite, good.replace(str(tmp_path / "d"), str(tmp_path / "nope")))
    assert "data.path: no such directory" in msg and "nope" in msg


def test_env_expansion_with_default_and_undefined(write_suite, good, tmp_path, monkeypatch):
    monkeypatch.setenv("MY_DATA", str(tmp_path))
    suite = load_suite(write_suite(good.replace(str(tmp_path / "d"), "${MY_DATA}/d")))
    assert suite.data.path == (tmp_path / "d").resolve()
    suite = load_suite(write_suite(good.replace(str(tmp_path / "d"), "${UNSET_XYZ:-" + str(tmp_path) + "}/d")))
    assert suite.data.path == (tmp_path / "d").resolve()
    monkeypatch.delenv("UNSET_XYZ", raising=False)
    msg = error_of(write_suite, good.replace(str(tmp_path / "d"), "${UNSET_XYZ}/d"))
    assert msg.endswith("data.path: environment variable UNSET_XYZ is not set")


def test_student_variant_needs_student_section(write_suite, good):
    msg = error_of(write_suite, good.replace("student: {layers: [0]}\n", ""))
    assert msg.endswith("variants[0].model: unknown model 'student' (this suite defines: teacher)")


@pytest.mark.parametrize(
    "old,new,expect",
    [
        ("layers: [0]", "layers: []", "student.layers: needs at least one"),
        ("layers: [0]", "layers: [2, 1]", "strictly increasing"),
        ("layers: [0]", "layers: [0], distill: {alpha_soft: -1}", "student.distill.alpha_soft"),
        ("name: ok", "name: ../../etc", "name:"),
        ("name: ok", "name: [1, 2]", "name: expected a string"),
        ("variants:", "measure: {allocator: jemalloc}\nvariants:", "measure.allocator"),
    ],
)
def test_bad_values(write_suite, good, old, new, expect):
    assert expect in error_of(write_suite, good.replace(old, new))


def test_invalid_yaml_and_non_mapping(write_suite):
    assert "invalid YAML" in error_of(write_suite, "name: [unclosed\n")
    assert "expected a mapping" in error_of(write_suite, "- a\n- b\n")


def test_cli_exit_code_2_and_one_line(write_suite, good, capsys):
    path = write_suite(good.replace("lr: 5e-5", "lr: fast"))
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"bench: error: {path}: teacher.finetune.lr: expected a number, got 'fast'"
    assert main(["run", str(path)]) == 2
    assert main(["plan", "no/such/suite.yaml"]) == 2


# ---------------------------------------------------------------- distillation settings

DISTILL = """
name: ok
data: {source: glue-tsv, path: "DATA"}
teacher: {source: "tiny:layers=4,hidden=32,heads=2"}
students:
  s:
    STUDENT
variants:
  - {model: [teacher, s], format: pytorch}
"""


@pytest.mark.parametrize("student, expected", [
    ("{layers: [0, 2], distill: {alpha_soft: -0.5}}",
     "students.s.distill.alpha_soft: Input should be greater than or equal to 0"),
    ("{layers: [0, 4]}", "students.s.layers: index 4 is out of range for a 4-layer teacher"),
    ("{layers: [0, 2], distill: {alpha_hidden: 1, layer_map: [1, 7]}}",
     "students.s.distill.layer_map: index 7 is out of range for a 4-layer teacher"),
    ("{layers: [0, 2], distill: {alpha_hidden: 1, layer_map: [3]}}",
     "students.s.distill.layer_map: needs one teacher layer per student layer (2), got 1"),
    ("{init: pretrained, source: 'tiny:layers=2,hidden=48,heads=2', distill: {alpha_hidden: 1}}",
     "students.s.distill.hidden_projection: student width 48 differs from the teacher's 32; "
     "set hidden_projection: true to learn a projection"),
    ("{init: pretrained, source: 'tiny:layers=2,hidden=48,heads=4', distill: {alpha_attn: 1}}",
     "students.s.distill.alpha_attn: attention maps need the same number of heads (student 4, teacher 2)"),
    ("{init: pretrained, layers: [0]}", "students.s.source: required with init: pretrained, and only then"),
    ("{layers: [0, 2], distill: {alpha_soft: 0, alpha_hard: 0}}",
     "students.s.distill: alpha_soft + alpha_hard + alpha_hidden + alpha_attn must be > 0"),
    ("{layers: [0, 2], general: {text: nowhere.txt}}",
     "students.s.general.text: no such text file 'nowhere.txt' (or use task:train for the task's own sentences)"),
], ids=["negative-alpha", "layer-out-of-range", "map-out-of-range", "map-length", "width-no-projection",
        "heads-differ", "pretrained-without-source", "no-loss", "missing-text"])
def test_bad_distillation_settings_name_the_field(write_suite, tmp_path, student, expected):
    (tmp_path / "d").mkdir(exist_ok=True)
    text = DISTILL.replace("DATA", str(tmp_path / "d")).replace("STUDENT", student)
    assert error_of(write_suite, text).endswith(expected)


def test_width_mismatch_with_projection_and_seeds_load(write_suite, tmp_path):
    (tmp_path / "d").mkdir()
    text = DISTILL.replace("DATA", str(tmp_path / "d")).replace(
        "STUDENT", "{init: pretrained, source: 'tiny:layers=2,hidden=48,heads=2', "
                   "distill: {alpha_hidden: 1, hidden_projection: true}}") + "seeds: [3, 1]\n"
    suite = load_suite(write_suite(text))
    assert suite.training_seeds == [3, 1] and list(suite.all_students) == ["s"]


def test_unknown_model_and_duplicate_seed(write_suite, tmp_path):
    (tmp_path / "d").mkdir()
    base = DISTILL.replace("DATA", str(tmp_path / "d")).replace("STUDENT", "{layers: [0]}")
    assert error_of(write_suite, base.replace("[teacher, s]", "[teacher, t]")).endswith(
        "variants[0].model: unknown model 't' (this suite defines: s, teacher)")
    assert error_of(write_suite, base + "seeds: [1, 1]\n").endswith("seeds: repeated seed in [1, 1]")
