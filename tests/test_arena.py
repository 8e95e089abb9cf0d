"""harness.models.arena with the real TFLite Micro interpreter (host build), always in child processes."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb

from harness.config import parse_targets
from harness.errors import ConfigError
from harness.models.arena import ArenaFit, _Child, fits_on, measure_arena
from tests.modelkit import ModelBuilder, make_variant, small_cnn

EXAMPLES = Path(__file__).resolve().parents[1] / "harness" / "example_models"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("arena")
    f32 = small_cnn(d / "float32.tflite")
    return {"float32": f32, **{s: make_variant(f32, s, d / f"{s}.tflite")
                               for s in ("int8", "int16x8", "float16", "dynamic_int8")}}


@functools.cache
def measured(model: Path) -> ArenaFit:
    """measure_arena once per model per session: each run spawns a TFLM child (~0.5 s)."""
    return measure_arena(model)


def allocates(model: Path, arena: int) -> bool:
    """One fresh TFLM child: does an interpreter with this arena allocate? (A crash is a no.)"""
    child = _Child(model, sys.executable)
    try:
        answer = child.probe(arena, invoke=False, timeout_s=60)
        return bool(answer and answer["ok"])
    finally:
        child.close()


@pytest.mark.parametrize("scheme", ["int8", "int16x8", "float32"])
def test_arena_is_the_minimum_that_allocates(models: dict[str, Path], scheme: str) -> None:
    fit = measured(models[scheme])
    assert fit.flash_bytes == models[scheme].stat().st_size
    assert fit.tflm_version and fit.probes > 2
    # Minimal to the byte, re-checked in fresh processes: one byte less does not allocate.
    assert allocates(models[scheme], fit.arena_bytes)
    assert not allocates(models[scheme], fit.arena_bytes - 1)
    # RecordingMicroAllocator reports what stays in use; allocating needs at least that (give or
    # take 16-byte alignment), and sometimes more for the memory planner's scratch.
    assert fit.recorded_bytes is not None
    assert fit.arena_bytes >= fit.recorded_bytes - 16


def test_int8_needs_less_arena_than_float32(models: dict[str, Path]) -> None:
    assert measured(models["int8"]).arena_bytes < measured(models["float32"]).arena_bytes


@pytest.mark.parametrize(("scheme", "hint"), [("float16", "float16"), ("dynamic_int8", "hybrid")])
def test_models_tflm_rejects_get_one_clear_error(models: dict[str, Path], scheme: str, hint: str) -> None:
    with pytest.raises(ConfigError) as err:
        measure_arena(models[scheme])
    message = str(err.value)
    assert str(models[scheme]) in message and "TFLite Micro cannot run this model" in message
    assert err.value.hint and hint in err.value.hint


def test_offset_buffers_are_measured_inlined(tmp_path: Path) -> None:
    """ai-edge-quantizer stores large weights after the flatbuffer; TFLM reads those as zeros and
    plans them into the arena. The fit is measured on the inlined copy a board must be flashed with."""
    from ai_edge_litert.tools import flatbuffer_utils

    b = ModelBuilder()
    x, y = b.tensor("input", [1, 512]), b.tensor("fc", [1, 640])
    b.op(fb.BuiltinOperator.FULLY_CONNECTED, [x, b.weights("fc/w", [640, 512]), b.weights("fc/b", [640])], [y],
         fb.FullyConnectedOptionsT(), fb.BuiltinOptions.FullyConnectedOptions)
    f32 = b.write(tmp_path / "bigfc.tflite", [x], [y])
    from ai_edge_quantizer import quantizer, recipe

    q = quantizer.Quantizer(str(f32))
    q.load_quantization_recipe(recipe.static_wi8_ai8())
    calibration = {"serving_default": [{"input": np.ones((1, 512), np.float32)}]}
    q.quantize(q.calibrate(calibration)).export_model(str(tmp_path / "int8.tflite"), overwrite=True)
    fit = measure_arena(tmp_path / "int8.tflite")
    assert any("offset buffers" in n and "inlined copy" in n for n in fit.notes)
    inlined = tmp_path / "inlined.tflite"
    flatbuffer_utils.write_model(flatbuffer_utils.read_model(str(tmp_path / "int8.tflite")), str(inlined))
    direct = measure_arena(inlined)
    assert fit.arena_bytes == direct.arena_bytes and fit.flash_bytes == direct.flash_bytes
    assert fit.arena_bytes < 640 * 512  # the 320 KiB of int8 weights stay in flash, not in the arena


def test_missing_model_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothere.tflite"):
        measure_arena(tmp_path / "nothere.tflite")


def test_a_tiny_arena_is_a_no_even_when_tflm_crashes(models: dict[str, Path]) -> None:
    # With a 100-byte arena TFLM may fail cleanly or kill its process (it segfaults on this
    # build); either way the probe reads "does not fit" and the parent survives.
    child = _Child(models["int8"], sys.executable)
    try:
        answer = child.probe(100, invoke=False, timeout_s=60)
        assert answer is None or answer["ok"] is False
        if answer is None:
            assert "signal" in child.exit_detail or "exit status" in child.exit_detail
    finally:
        child.close()


def test_fits_on_checks_ram_and_flash_from_targets_toml(models: dict[str, Path]) -> None:
    targets = parse_targets("""
        [targets.tiny]
        kind = "serial"
        port = "loop://"
        ram = "1KiB"
        flash = "1MB"
        [targets.m4]
        kind = "serial"
        port = "loop://"
        ram = "256KiB"
        flash = "2KiB"
        [targets.roomy]
        kind = "serial"
        port = "loop://"
        ram = "512KiB"
        flash = "2MB"
        [targets.borderline]
        kind = "serial"
        port = "loop://"
        ram = 2000
        flash = "1MB"
        [targets.emulated]
        kind = "serial"
        emulator = true
        ram = 2000
        flash = "1MB"
        [targets.undeclared]
        kind = "local"
    """, "targets.toml")
    fit = measured(models["int8"])
    assert fit.arena_bytes // 2 < 2000 < fit.arena_bytes  # what makes "borderline" borderline
    rows = {r.target: r for r in fits_on(fit, targets.values())}
    assert (rows["tiny"].fits_ram, rows["tiny"].fits_flash, rows["tiny"].fits) == (False, True, False)
    assert (rows["m4"].fits_ram, rows["m4"].fits_flash, rows["m4"].fits) == (True, False, False)
    assert rows["roomy"].fits is True
    # A 32-bit MCU needs between half the host's 64-bit measurement and all of it: undecided.
    assert rows["borderline"].fits_ram is None and rows["borderline"].arena_floor == fit.arena_bytes // 2
    # The emulator runs the very build that measured: exact, so it does not fit.
    assert rows["emulated"].exact and rows["emulated"].fits_ram is False
    assert rows["undeclared"].fits is None and rows["undeclared"].fits_ram is None
    assert rows["roomy"].to_json()["arena_bytes"] == fit.arena_bytes


def test_fits_table_renders(models: dict[str, Path]) -> None:
    from rich.console import Console

    from harness.render.analysis import fits_table

    fit = ArenaFit("m.tflite", 3000, 2900, 5000, "test", 10, 0)
    targets = parse_targets('[targets.a]\nkind = "local"\nram = 2048\nflash = 8192\n'
                            '[targets.b]\nkind = "local"\n', "t.toml")
    console = Console(record=True, width=160)
    console.print(fits_table(fit, fits_on(fit, targets.values())))
    text = console.export_text()
    assert "146 %" in text and "maybe" in text and "add ram/flash to targets.toml" in text
    assert "1.5 KiB .. 2.9 KiB" in text  # a 32-bit MCU needs between half and all of it


def test_shipped_keyword_model_arena() -> None:
    fit = measure_arena(EXAMPLES / "ds_cnn_kws.tflite")
    # Its largest activations are two 25x5x64 float32 tensors (32,000 B each) live at once.
    assert 2 * 25 * 5 * 64 * 4 <= fit.arena_bytes < 4 * 25 * 5 * 64 * 4
    assert fit.crashed_probes == 0 or fit.notes
