"""The house's one rule of imports: cli → render → scenarios → lab → results → models → leaves.

A module may import from its own package and from any package below it, never from one above.
The leaves (errors, config, config_values, plan, stream_plan, stats) import only each other. Code
under device_agents/ runs on boards and never imports harness. Imports inside functions count too: a lazy import is still a
dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("cli", "render", "scenarios", "lab", "results", "models")  # top to bottom
LEAVES = {"errors", "config", "config_values", "plan", "stream_plan", "stats", "__init__"}
NOT_LAYERED = {"example_models", "__main__"}  # a model generator script; `python -m harness`


def _layer(module: str) -> int | None:
    """The rank of harness.X... (0 = cli, the top); len(LAYERS) for a leaf; None outside harness."""
    parts = module.split(".")
    if parts[0] != "harness":
        return None
    if len(parts) == 1 or parts[1] in LEAVES:
        return len(LAYERS)
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if node.module == "harness")
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path.relative_to(ROOT)}: relative import; write harness.… in full")
    return found


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def test_every_harness_module_belongs_to_a_layer() -> None:
    strays = [str(p.relative_to(ROOT)) for p in (ROOT / "harness").rglob("*.py")
              if p.relative_to(ROOT / "harness").parts[0].removesuffix(".py") not in NOT_LAYERED
              and _layer(_module(p)) is None]
    assert strays == [], f"modules outside the layers {LAYERS} and the leaves {sorted(LEAVES)}"


def test_imports_run_one_way() -> None:
    upward = []
    for path in sorted((ROOT / "harness").rglob("*.py")):
        if path.relative_to(ROOT / "harness").parts[0].removesuffix(".py") in NOT_LAYERED:
            continue
        own = _layer(_module(path))
        assert own is not None
        for imported in sorted(_imports(path)):
            rank = _layer(imported)
            if rank is not None and rank < own:
                upward.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert upward == [], "imports against the direction cli → render → scenarios → lab → results → " \
                         "models → leaves:\n" + "\n".join(upward)


def test_device_agents_never_import_harness() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "device_agents").rglob("*.py"))
                 if any(m == "harness" or m.startswith("harness.") for m in _imports(p))]
    assert offenders == []


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from harness.cli.common import stdout\n")
    assert "harness.cli.common" in _imports(bad)
    assert _layer("harness.cli.common") < _layer("harness.models.analysis")  # type: ignore[operator]
