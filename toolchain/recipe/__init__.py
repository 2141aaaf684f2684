"""TOML recipes: schema (sections.py), validation (validate.py) and loading (load.py)."""

from toolchain.recipe.load import load_recipe, recipe_from_text
from toolchain.recipe.sections import Recipe

__all__ = ["Recipe", "load_recipe", "recipe_from_text"]
