"""What to train: the sweep YAML as a validated spec, the run spec of one job, parameter and FLOP
counts, and the planner. No JAX."""
