"""One run's training: the step loop, the optimizer, checkpoints, throughput. Imports JAX, except
schedules and tracking (the planner builds their types)."""
