"""The per-op-type latency fit (harness.results.fit) on recorded timings with a known answer: times
built from per-op rates and costs chosen here, so that the fit must give those rates back, a
left-out model must be predicted from the others alone, and what the board never ran is named."""

from __future__ import annotations

import pytest

from harness.results.fit import Group, Layers, Model, Op, Whole, fit, leave_one_out, op_class

PI = Group("pi", 1, False)
# ns per FLOP by (class, precision), ns per op, and the empty Invoke: the board's truth.
NS_PER_FLOP = {("conv", "float32"): 0.25, ("depthwise", "float32"): 1.0, ("fully_connected", "float32"): 0.5,
               ("elementwise", "float32"): 2.0, ("conv", "int8"): 0.125}
PER_OP = 300.0
INVOKE = 1500.0
TYPES = {"conv": "CONV_2D", "depthwise": "DEPTHWISE_CONV_2D", "fully_connected": "FULLY_CONNECTED",
         "elementwise": "ADD"}


def op(cls: str, flops: int, precision: str = "float32") -> Op:
    return Op(TYPES[cls], cls, precision, flops)


def model(name: str, *ops: Op) -> Model:
    return Model(name, f"sha-{name}", "float32", ops)


def op_ns(o: Op) -> float:
    return (o.flops or 0) * NS_PER_FLOP[(o.cls, o.precision)] + PER_OP


def whole(m: Model, group: Group = PI, scale: float = 1.0) -> Whole:
    return Whole(group, m, scale * (INVOKE + sum(op_ns(o) for o in m.ops)))


def profile(m: Model, scale: float = 1.0) -> Layers:
    """A profile whose layers are ``scale`` times their true time (prefix differencing biases the
    sum), with the true empty-Invoke and whole-model times."""
    return Layers(PI, m, tuple(scale * op_ns(o) for o in m.ops), INVOKE, whole(m).ns)


MODELS = [
    model("a", op("conv", 40_000), op("elementwise", 1_000), op("fully_connected", 2_000)),
    model("b", op("conv", 90_000), op("conv", 10_000), op("depthwise", 5_000)),
    model("c", op("depthwise", 20_000), op("depthwise", 3_000), op("elementwise", 500), op("elementwise", 700)),
    model("d", op("fully_connected", 50_000), op("elementwise", 9_000)),
    model("e", op("conv", 5_000, "int8"), op("conv", 60_000, "int8"), op("fully_connected", 1_000)),
    model("f", op("conv", 7_000), op("depthwise", 8_000), op("fully_connected", 4_000), op("elementwise", 100)),
    model("g", op("conv", 30_000, "int8"), op("elementwise", 2_000), op("elementwise", 3_000)),
]


def test_hand_worked_example() -> None:
    """Two one-conv models (1,000 and 3,000 FLOPs) measured whole at 2,500 and 4,500 ns, and the first
    profiled: empty Invoke 500 ns, its conv 2,000 ns. Then 500 + p + 1000 r = 2500 and
    500 + p + 3000 r = 4500 give r = 1 ns/FLOP (1 GFLOP/s) and p = 1,000 ns per op, and two convs
    of 500 FLOPs take 500 + 2 * (1000 + 500) = 3,500 ns."""
    small, large = model("small", op("conv", 1000)), model("large", op("conv", 3000))
    fitted = fit(PI, [Whole(PI, small, 2500), Whole(PI, large, 4500)], [Layers(PI, small, (2000.0,), 500, 2500)])
    assert fitted.gflops(("conv", "float32")) == pytest.approx(1.0)
    assert fitted.per_op_ns == pytest.approx(1000)
    assert fitted.invoke_ns == pytest.approx(500)
    estimate = fitted.estimate(model("two", op("conv", 500), op("conv", 500)))
    assert estimate.ns == pytest.approx(3500)
    assert estimate.extrapolated == ()
    (part,) = estimate.parts
    assert (part.cls, part.precision, part.ops, part.flops, part.ns) == ("conv", "float32", 2, 1000,
                                                                          pytest.approx(3000))


def test_fit_recovers_the_rates_it_was_built_from() -> None:
    """Whole times of every model and profiles of three (their layers 20 % too slow in sum, as a
    biased prefix difference would make them): the fit gives back every rate and cost."""
    fitted = fit(PI, [whole(m) for m in MODELS], [profile(m, 1.2) for m in MODELS[:3]])
    assert set(fitted.ns_per_flop) == set(NS_PER_FLOP)
    for key, ns in NS_PER_FLOP.items():
        assert fitted.ns_per_flop[key] == pytest.approx(ns, rel=1e-6), key
    assert fitted.per_op_ns == pytest.approx(PER_OP, rel=1e-6)
    assert fitted.invoke_ns == pytest.approx(INVOKE, rel=1e-6)
    assert fitted.models == tuple(m.name for m in MODELS)
    assert fitted.profiles == ("a", "b", "c")
    unseen = model("new", op("conv", 12_345), op("depthwise", 678), op("conv", 9_000, "int8"))
    assert fitted.estimate(unseen).ns == pytest.approx(whole(unseen).ns, rel=1e-6)


def test_other_groups_do_not_enter_the_fit() -> None:
    """The same models twice as slow with 4 threads (another group) change nothing of the 1-thread fit."""
    four = Group("pi", 4, False)
    wholes = [whole(m) for m in MODELS] + [whole(m, four, 2.0) for m in MODELS]
    fitted = fit(PI, wholes, [])
    assert fitted.estimate(MODELS[0]).ns == pytest.approx(whole(MODELS[0]).ns, rel=1e-6)
    assert fit(four, wholes, []).estimate(MODELS[0]).ns == pytest.approx(2 * whole(MODELS[0]).ns, rel=1e-6)


def test_leave_one_out_never_sees_the_left_out_model() -> None:
    """Model "d" is recorded 3x slower than the board's rates make it, in its whole time and in its
    profile. Left out, it is predicted from the others alone: exactly its true time, an error of
    (1 - 3) / 3; had any of its own data entered the fit, the prediction would be pulled toward
    3x. Without "d" at all, every other model is predicted exactly."""
    odd = MODELS[3]
    wholes = [whole(m) for m in MODELS if m is not odd] + [whole(odd, scale=3.0)]
    layers = [profile(m) for m in MODELS if m is not odd] + [Layers(PI, odd, tuple(3 * op_ns(o) for o in odd.ops), INVOKE,
                                                        3 * whole(odd).ns)]
    checks = {c.model.name: c for c in leave_one_out(wholes, layers)}
    assert set(checks) == {m.name for m in MODELS}
    assert checks["d"].estimate.ns == pytest.approx(whole(odd).ns, rel=1e-6)
    assert checks["d"].error == pytest.approx((1 - 3) / 3, rel=1e-6)
    clean = {c.model.name: c for c in leave_one_out([w for w in wholes if w.model is not odd],
                                                    [p for p in layers if p.model is not odd])}
    assert all(c.error == pytest.approx(0.0, abs=1e-6) for c in clean.values())


def test_leave_one_out_matches_the_model_by_file_or_by_family() -> None:
    """Two files of the same ops (a model and its copy: same sha256) are one model, left out
    together; a ``same`` key (a benchmark's base model name) leaves a whole family out."""
    copy = Model("a-copy", MODELS[0].sha256, "float32", MODELS[0].ops)
    wholes = [whole(m) for m in MODELS] + [whole(copy, scale=5.0)]
    profiles = [profile(m) for m in MODELS]
    by_file = {c.model.name: c for c in leave_one_out(wholes, profiles)}
    assert by_file["a"].estimate.ns == by_file["a-copy"].estimate.ns == pytest.approx(whole(MODELS[0]).ns, rel=1e-6)
    assert by_file["a-copy"].error == pytest.approx((1 - 5) / 5, rel=1e-6)
    # By family: "e" and "g" (the int8 convs) together; left out, nobody else ran int8 convs.
    family = {"e": "int8", "g": "int8"}
    checks = {c.model.name: c for c in leave_one_out(wholes, profiles, same=lambda m: family.get(m.name, m.name))}
    assert any("CONV_2D int8 never measured" in note for note in checks["e"].estimate.extrapolated)
    assert not checks["f"].estimate.extrapolated


def test_extrapolation_is_named_and_falls_back_to_float32() -> None:
    """A board that never ran int8 depthwise, any SOFTMAX or any RESHAPE: the int8 depthwise takes
    the float32 depthwise rate, the int8 softmax the float32 elementwise one, and all are said."""
    fitted = fit(PI, [whole(m) for m in MODELS], [profile(m) for m in MODELS[:3]])
    new = Model("q", "sha-q", "int8", (Op("DEPTHWISE_CONV_2D", "depthwise", "int8", 1000),
                                       Op("SOFTMAX", op_class("SOFTMAX", "elementwise"), "int8", 10),
                                       Op("RESHAPE", "shape", "int8", 0)))
    e = fitted.estimate(new)
    assert e.ns == pytest.approx(INVOKE + 1000 * 1.0 + 10 * 2.0 + 3 * PER_OP, rel=1e-6)
    assert any("DEPTHWISE_CONV_2D int8 never measured" in n and "depthwise float32" in n for n in e.extrapolated)
    assert any("SOFTMAX (elementwise) never measured" in n for n in e.extrapolated)
    assert any("SOFTMAX int8 never measured" in n and "elementwise float32" in n for n in e.extrapolated)
    assert any("RESHAPE (shape) never measured" in n for n in e.extrapolated)
    assert {p.cls for p in e.parts if p.extrapolated} == {"depthwise", "elementwise", "shape"}


def test_unknown_flops_cost_their_per_op_time_and_are_named() -> None:
    fitted = fit(PI, [whole(m) for m in MODELS], [profile(m) for m in MODELS])
    e = fitted.estimate(model("u", Op("ADD", "elementwise", "float32", None)))
    assert e.ns == pytest.approx(INVOKE + PER_OP, rel=1e-6)
    assert e.extrapolated == ("ADD: FLOPs unknown; only its per-op time is counted",)


def test_nothing_to_fit_is_an_error_not_a_zero() -> None:
    with pytest.raises(ValueError, match="no time measured on pi"):
        fit(PI, [whole(MODELS[0], Group("other", 1, False))], [])
