"""cplitool's compression side: recipes, models, data, training, CPLI pruning, fine-tuning."""

__version__ = "0.1.0"
