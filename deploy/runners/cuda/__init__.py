"""CUDA memory, streams and events for the engine runners: one interface (base.py), three libraries, choose.py."""
