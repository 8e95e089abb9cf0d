"""The run with variants (`harness run --variants DIR`, or several --model whose recipes name a
base among them): which models run, in which order, and what the comparison needs to know.

It runs on the one path of every benchmark (harness.scenarios.benchmark, the runner): this
module only builds the matrix. Every variant (a .tflite with a recipe file beside it,
harness.models.recipes) is paired with its float32 base, found by the recipe's sha256: for a
variant of DIR among the --model files and the files of DIR, else at the path the recipe
recorded, and the base runs too; for a variant named by --model, among the --model files only
(else it runs without a comparison, and a note says how to get one). Models are ordered so that on every target a base runs before its variants (the runner
runs a target's jobs in order): a variant's result is judged against its base run as soon as
it finishes (summary.jsonl holds the judgement). The evaluation pass runs on every model of
such a run, each variant's samples in its base's domain (harness.models.evalset), so a float
base and its int8 variants get the same real-valued samples.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError
from harness.models.files import sha256
from harness.models.recipes import Recipe, recipe_for
from harness.models.variants import KINDS
from harness.results.variants import COLLAPSE_POINTS, VariantInfo, VariantSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VariantMatrix:
    """The models of a run with variants and what the comparison needs."""

    models: tuple[Path, ...]  # each base followed by its variants, then the other models
    variants: VariantSet
    domain: dict[Path, Path] = field(default_factory=dict)  # a variant -> its base (eval samples' domain)
    notes: tuple[str, ...] = ()  # what the user should know (a variant whose base is not in the run)

    @property
    def compares(self) -> bool:
        """True when at least one variant has its base in the run."""
        return bool(self.domain)


def _order(recipe: Recipe) -> tuple[int, str]:
    return (KINDS.index(recipe.kind) if recipe.kind in KINDS else len(KINDS), recipe.name)


def variant_matrix(models: Sequence[Path], variants_dir: Path | None = None,
                   collapse_points: float = COLLAPSE_POINTS) -> VariantMatrix:
    """The matrix of ``models`` and of the variants in ``variants_dir`` (module docstring).

    Raises ConfigError naming the folder or the recipe: a DIR without variants, a variant of DIR
    whose base is found nowhere, a recipe that cannot be read or describes another file.
    """
    from_dir: list[Path] = []
    if variants_dir is not None:
        if not variants_dir.is_dir():
            raise ConfigError(f"--variants {variants_dir}: not a directory",
                              hint="pass the folder harness quantize --out wrote the variants to")
        from_dir = sorted(variants_dir.glob("*.tflite"))
    given = list(dict.fromkeys(models))
    recipes = {p: r for p in [*given, *from_dir] if (r := recipe_for(p)) is not None}
    if variants_dir is not None and not any(p in recipes for p in from_dir):
        raise ConfigError(f"--variants {variants_dir}: no variants there (no <model>.<name>.tflite with its "
                          ".recipe.json beside it)", hint="make them with harness quantize MODEL --out DIR")
    plain = [p for p in [*given, *from_dir] if p not in recipes]
    bases: dict[Path, list[Path]] = {}
    notes: list[str] = []
    digests = {p: sha256(p) for p in plain if p.is_file()}
    for path, recipe in recipes.items():
        # a variant of DIR may find its base where its recipe says; one named by --model, only
        # among the --model files (the run was asked for those)
        base = (recipe.locate_base(plain) if path in from_dir else
                next((p for p, d in digests.items() if d == recipe.base_sha256), None))
        if base is None and path in from_dir:
            raise ConfigError(f"{recipe.path}: its base {recipe.base_path} (sha256 {recipe.base_sha256[:12]}) is "
                              f"neither among --model nor at {recipe.base_resolved} as it was",
                              hint="pass the base with --model PATH, or make the variant again from it")
        if base is None:
            notes.append(f"{path.name} is a variant of {Path(recipe.base_path).name} (sha256 "
                         f"{recipe.base_sha256[:12]}), which is not among --model: no comparison for it "
                         "(add --model BASE)")
            continue
        bases.setdefault(_same(base, plain), []).append(path)
    ordered: list[Path] = []
    for base, variants in bases.items():
        ordered += [base, *sorted(variants, key=lambda p: _order(recipes[p]))]
    ordered += [p for p in [*given, *from_dir] if p not in ordered and (p in given or p in recipes)]
    infos = tuple(VariantInfo(r.variant_sha256, r.kind, r.name, r.base_sha256, str(r.path))
                  for p, r in recipes.items() if p in ordered)
    domain = {v: base for base, variants in bases.items() for v in variants}
    return VariantMatrix(tuple(ordered), VariantSet(infos, collapse_points), domain, tuple(notes))


def _same(base: Path, plain: Sequence[Path]) -> Path:
    """``base`` as the user gave it when it is one of ``plain`` (the same file), else as found."""
    resolved = base.resolve()
    return next((p for p in plain if p.resolve() == resolved), base)
