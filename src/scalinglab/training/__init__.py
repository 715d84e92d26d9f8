"""One run's training: the step loop, the optimizer, checkpoints, throughput. Imports JAX, except
schedules (the planner builds its types)."""
