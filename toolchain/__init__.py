"""cplitool's compression side: recipes, models, data, training, CPLI pruning, fine-tuning."""

# The one version source: pyproject.toml reads it at build time, `cplitool --version` prints it.
__version__ = "0.1.0"
