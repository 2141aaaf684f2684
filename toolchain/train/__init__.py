"""Dense training and evaluation: plain loops (loop.py), optimizers and schedules (optim.py), the epoch
driver with resume and best-model keeping (fit.py)."""
