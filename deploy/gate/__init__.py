"""The CI latency gate: a compute-bound dense/pruned pair, timed interleaved, compared with a measured baseline."""
