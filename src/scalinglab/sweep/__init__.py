"""What to train: the sweep YAML as a validated spec, the run spec of one job, model shapes and
memory, and the planner. No JAX."""
