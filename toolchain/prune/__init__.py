"""Channel pruning: CPLI (and CP, L1, random in the same framework), `prune_stage` for the pipeline."""
