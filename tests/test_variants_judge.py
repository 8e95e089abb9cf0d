"""The comparison of variants as pure logic: the speed-up interval, the collapse rules, what a
stored record says (unsupported, repaired), TFLite Micro's check of a model, and which models
a run with variants runs, in which order."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import stats
from harness.errors import AgentError, ConfigError
from harness.models import micro
from harness.models.recipes import recipe_path
from harness.models.variants import quantize
from harness.results.benchmark import from_lines
from harness.results.fidelity import Accuracy, Fidelity
from harness.results.summary import summarize
from harness.results.variants import VariantInfo, VariantSet, collapse, repairs, unsupported
from harness.scenarios.variants import variant_matrix
from tests.agentrun import DIGITS, harness
from tests.modelkit import make_variant, small_cnn

UNITS = st.lists(st.floats(min_value=1.0, max_value=1e6), min_size=2, max_size=12)


def test_ratio_interval_exact() -> None:
    # numerator mean 11, s² = 2 over 2 units: log variance 2 / (2 * 121); the denominator has no
    # spread, so Welch's df is 1 (t = 12.706205), and the interval is 2.2 * exp(±t / 11)
    lo, hi = stats.mean_ratio_interval([10, 12], [5, 5, 5])  # type: ignore[misc]
    assert (lo, hi) == pytest.approx((2.2 * math.exp(-12.706205 / 11), 2.2 * math.exp(12.706205 / 11)))
    # both sides ±10 % around 100 and 50 over 4 units: each log variance 1/600, df = 6 (t = 2.446912)
    lo, hi = stats.mean_ratio_interval([100, 110, 90, 100], [50, 55, 45, 50])  # type: ignore[misc]
    half = 2.446912 * math.sqrt(2 / 600)
    assert (lo, hi) == pytest.approx((2 * math.exp(-half), 2 * math.exp(half)))
    # centred on the figure it is printed with; no spread at all: a point
    assert stats.mean_ratio_interval([10, 12], [5, 5, 5], ratio=2.0)[0] == pytest.approx(  # type: ignore[index]
        2.0 * math.exp(-12.706205 / 11))
    assert stats.mean_ratio_interval([4, 4], [2, 2]) == (2.0, 2.0)
    assert stats.mean_ratio_interval([4], [2, 2]) is None and stats.mean_ratio_interval([4, 4], [0, 0]) is None


def test_ratio_interval_covers_the_true_ratio_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(11)
    for units, noise in ((10, 0.05), (3, 0.03)):  # block medians; a few process medians
        hits = 0
        for _ in range(2000):
            a, b = 100 * (1 + noise * rng.standard_normal(units)), 50 * (1 + noise * rng.standard_normal(units))
            lo, hi = stats.mean_ratio_interval(list(a), list(b))  # type: ignore[misc]
            hits += lo <= 2.0 <= hi
        assert 0.93 <= hits / 2000 <= 0.985, (units, hits)


@given(UNITS, UNITS, st.floats(min_value=0.01, max_value=100))
def test_ratio_interval_inverts_and_scales(a: list[float], b: list[float], k: float) -> None:
    ab, ba = stats.mean_ratio_interval(a, b), stats.mean_ratio_interval(b, a)
    assert ab is not None and ba is not None
    assert ab[0] == pytest.approx(1 / ba[1], rel=1e-9) and ab[1] == pytest.approx(1 / ba[0], rel=1e-9)
    scaled = stats.mean_ratio_interval([k * x for x in a], b)
    assert scaled is not None and scaled[0] == pytest.approx(k * ab[0], rel=1e-6)
    assert ab[0] <= stats.mean(a) / stats.mean(b) * (1 + 1e-9) and ab[1] >= stats.mean(a) / stats.mean(b) * (1 - 1e-9)


def fid(agreement: float, cosine: float) -> Fidelity:
    return Fidelity("ab" * 32, cosine, 0.1, agreement)


def test_collapse_rules() -> None:
    base = Accuracy(450, 0.98)
    assert collapse(Accuracy(450, 0.88), base, fid(0.1, 0.1)) is None  # exactly 10 points: not more
    why = collapse(Accuracy(450, 0.87), base, None)
    assert why is not None and "87.0 % against 98.0 %" in why and "11.0 points below, more than 10" in why
    assert collapse(Accuracy(450, 0.87), base, None, points=20) is None  # --collapse-threshold 20
    # with labels, accuracy decides; without them, agreement and cosine do
    assert collapse(Accuracy(450, 0.98), base, fid(0.2, 0.2)) is None
    assert "agreement" in (collapse(None, None, fid(0.49, 0.99)) or "")
    assert "cosine" in (collapse(None, None, fid(0.9, 0.89)) or "")
    assert collapse(None, None, fid(0.5, 0.9)) is None and collapse(None, None, None) is None


def test_the_variant_set_round_trips_through_run_json() -> None:
    v = VariantSet((VariantInfo("a" * 64, "int8", "int8", "b" * 64, "/x/m.int8.recipe.json"),), 7.5)
    meta = json.loads(json.dumps(v.as_meta()))
    assert VariantSet.from_meta(meta) == v and VariantSet.from_meta({}) == VariantSet()
    assert v.is_base("b" * 64) and not v.is_base("a" * 64) and v.info("a" * 64) is not None


def header() -> dict[str, object]:
    return {"target": "mcu", "model": "m.tflite", "model_sha256": "c" * 64, "threads": 1, "plan": {}}


def test_a_record_says_unsupported_and_repaired_once_each() -> None:
    repair = {"type": "repair", "what": "external_buffers", "buffers": 5, "sha256": "d" * 64}
    b = from_lines(header(), [{"type": "process", "index": 0}, repair, {"type": "process", "index": 1}, repair])
    assert repairs(b) == (repair,) and unsupported(b) is None
    refused = from_lines(header(), [{"type": "error", "code": "unsupported_model", "message": "m.tflite cannot run"}])
    assert unsupported(refused) == "m.tflite cannot run"
    judged = VariantSet().judge(summarize(refused), [])
    assert judged.flags == ("unsupported",) and judged.role is None and judged.to_json(None)["flags"] == ["unsupported"]


@pytest.fixture(scope="module")
def cnn_variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("cnn")
    base = small_cnn(out / "cnn.tflite")
    return {k: make_variant(base, k, out / f"cnn_{k}.tflite") for k in ("float16", "dynamic_int8",
                                                                       "weight_only_int8", "int8", "mixed")}


def test_tflite_micro_check_names_what_it_cannot_run(cnn_variants: dict[str, Path]) -> None:
    assert "float16 weights" in (micro.check(cnn_variants["float16"]).unsupported or "")
    assert "hybrid" in (micro.check(cnn_variants["dynamic_int8"]).unsupported or "")
    assert "per-channel" in (micro.check(cnn_variants["weight_only_int8"]).unsupported or "")
    assert micro.check(cnn_variants["int8"]) == micro.MicroCheck(None, 0)
    assert micro.check(cnn_variants["mixed"]).unsupported is None
    with pytest.raises(AgentError) as err:
        micro.for_micro(cnn_variants["float16"], "mcu")
    assert err.value.code == "unsupported_model" and err.value.target == "mcu"
    assert micro.for_micro(cnn_variants["int8"], "mcu") == (cnn_variants["int8"].read_bytes(), None)


def test_a_devices_refusal_is_mapped_to_unsupported() -> None:
    # what the emulated MCU (real TFLite Micro) answers for a float16 and a hybrid model
    float16 = ("ARENA_TOO_SMALL: tensorflow/lite/micro/kernels/dequantize_common.cc:42 input->type == "
               "kTfLiteInt8 || input->type == kTfLiteInt16 || input->type == kTfLiteUInt8 was not true.")
    hybrid = "ARENA_TOO_SMALL: tensorflow/lite/micro/kernels/conv_common.cc Hybrid models are not supported on TFLite Micro."
    for message, why in ((float16, "float16"), (hybrid, "hybrid")):
        mapped = micro.refused(AgentError(message, code="arena_too_small", target="mcu"), "m.tflite")
        assert mapped is not None and mapped.code == "unsupported_model" and why in mapped.message
        assert message in mapped.message and mapped.target == "mcu"
    assert micro.refused(AgentError("arena too small: needs 80000", code="arena_too_small"), "m.tflite") is None


@pytest.fixture(scope="module")
def digits_int8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("v")
    calib = out / "calib.npz"
    np.savez(calib, x=np.load(DIGITS.with_name("digits_test.npz"))["x"][:16])
    quantize(DIGITS, "float16", out)
    return quantize(DIGITS, "int8", out, calibration=calib).path


def test_the_matrix_runs_each_base_before_its_variants(digits_int8: Path, tmp_path: Path) -> None:
    folder = digits_int8.parent
    m = variant_matrix([], folder)
    assert m.models == (DIGITS, folder / "digits_cnn.float16.tflite", digits_int8) and m.compares
    assert m.domain == {folder / "digits_cnn.float16.tflite": DIGITS, digits_int8: DIGITS}
    assert [v.name for v in m.variants.infos] == ["float16", "int8"] and m.variants.is_base(m.variants.infos[0].base_sha256)
    # a --model base given by another path is the one run; a variant without its base is noted
    copy = shutil.copy(DIGITS, tmp_path / "digits_cnn.tflite")
    assert variant_matrix([Path(copy), digits_int8]).models == (Path(copy), digits_int8)
    alone = variant_matrix([digits_int8], None)
    assert not alone.compares and alone.models == (digits_int8,) and "not among --model" in alone.notes[0]


def test_bad_variant_folders_get_one_clear_error(digits_int8: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no variants there"):
        variant_matrix([], tmp_path)
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in (digits_int8, recipe_path(digits_int8)):
        shutil.copy(f, moved / f.name)
    recipe = json.loads(recipe_path(moved / digits_int8.name).read_text())
    recipe["base"]["resolved"] = str(tmp_path / "gone.tflite")
    recipe_path(moved / digits_int8.name).write_text(json.dumps(recipe))
    with pytest.raises(ConfigError, match="its base .* is neither among --model nor at") as err:
        variant_matrix([], moved)
    assert "--model" in (err.value.hint or "")
    assert variant_matrix([DIGITS], moved).models == (DIGITS, moved / digits_int8.name)  # given: found


def test_collapse_threshold_usage_errors(tmp_path: Path) -> None:
    for bad in ("-1", "101", "nan", "ten"):
        p = harness("run", "--collapse-threshold", bad, cwd=tmp_path)
        assert p.returncode == 2 and "--collapse-threshold" in p.stderr, p.stderr
