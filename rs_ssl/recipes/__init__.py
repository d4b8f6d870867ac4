"""Study recipes: named YAML configurations shipped with the package (`rs-ssl pretrain --recipe NAME`).

A recipe file holds a few facts about the study (`summary`, `source`, `dataset`) and one
section per command it configures (`pretrain`, `probe`, `finetune`), each with the keys of that
command's `--config` file. Every value is cited in a YAML comment. The CLI layers them:
defaults < recipe < --config < command-line options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rs_ssl.config import RecipesConfig, validate_values
from rs_ssl.errors import UsageError

RECIPE_DIR = Path(__file__).resolve().parent
COMMANDS = ("pretrain", "probe", "finetune")
_FACTS = ("summary", "source", "dataset")


@dataclass(frozen=True)
class Recipe:
    """One study's setup: its facts and a section of option values per command."""

    name: str
    summary: str
    source: str
    dataset: str
    path: Path
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def values(self, command: str, cls: type) -> dict[str, Any]:
        """The recipe's option values for `command`, checked and typed as `cls`; the recipe named."""
        if command not in self.sections:
            defined = ", ".join(self.sections) or "none"
            raise UsageError(
                f"--recipe {self.name}: the study defines no `{command}` step (it has: {defined}); "
                f"see `rs-ssl recipes {self.name}`"
            )
        values = validate_values(
            cls, self.sections[command], f"recipe {self.path}, section {command}"
        )
        return values | {"recipe": self.name}


def _read(path: Path) -> Recipe:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise UsageError(f"recipe {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    unknown = set(raw) - {*_FACTS, *COMMANDS}
    missing = [k for k in _FACTS if not raw.get(k)]
    if unknown or missing:
        raise UsageError(
            f"recipe {path}: unknown keys {sorted(unknown)} / missing facts {missing}; "
            f"a recipe has {', '.join(_FACTS)} and sections {', '.join(COMMANDS)}"
        )
    sections = {c: dict(raw[c]) for c in COMMANDS if raw.get(c)}
    return Recipe(
        path.stem, str(raw["summary"]), str(raw["source"]), str(raw["dataset"]), path, sections
    )


def available() -> dict[str, Recipe]:
    """Every shipped recipe by name (its file name without .yaml), sorted."""
    return {p.stem: _read(p) for p in sorted(RECIPE_DIR.glob("*.yaml"))}


def load(name: str) -> Recipe:
    path = RECIPE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise UsageError(
            f"--recipe {name}: no such recipe; available: {', '.join(available())} (see `rs-ssl recipes`)"
        )
    return _read(path)


def recipe_values(command: str, cls: type, name: str) -> dict[str, Any]:
    """The option values recipe `name` sets for `command` (the layer between defaults and --config)."""
    return load(name).values(command, cls)


def list_recipes(cfg: RecipesConfig) -> dict[str, Any]:
    """`rs-ssl recipes`: one line per recipe (name, commands, summary, source), or one recipe's YAML."""
    if cfg.name:
        recipe = load(cfg.name)
        print(recipe.path.read_text(encoding="utf-8"), end="")
        return {"recipe": recipe.name}
    recipes = available()
    width = max(len(n) for n in recipes)
    steps = {n: "[" + "+".join(r.sections) + "]" for n, r in recipes.items()}
    swidth = max(len(s) for s in steps.values())
    for n, r in recipes.items():
        print(f"{n:<{width}}  {steps[n]:<{swidth}}  {r.summary}  (source: {r.source})")
    return {"recipes": list(recipes)}
