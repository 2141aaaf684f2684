"""`cplitool run`: the stages in order, each skipped while its recipe sections and inputs are unchanged."""
