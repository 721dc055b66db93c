"""`python -m experiments` lists the experiments."""

print("experiments: pid  (python -m experiments.pid --help)")
