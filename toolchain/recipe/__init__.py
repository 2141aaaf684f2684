"""TOML recipes: schema (sections.py), validation (validate.py) and loading (load.py)."""

from cplitool.toolchain.recipe.load import load_recipe, recipe_from_text
from cplitool.toolchain.recipe.sections import Recipe

__all__ = ["Recipe", "load_recipe", "recipe_from_text"]
