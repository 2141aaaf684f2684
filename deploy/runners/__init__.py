"""Backends behind one interface (base.Runner): a loader builds or opens the thing lazily, a runner
activates, infers and deactivates (after Polygraphy's split)."""
