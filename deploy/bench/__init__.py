"""trtexec-grade latency measurement: statistics, the timing loop, interleaved dense/pruned comparison,
the environment block and the `bench` stage."""
