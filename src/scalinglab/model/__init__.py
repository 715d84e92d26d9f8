"""The Transformer and its parametrizations. transformer and cpu_attention import JAX;
parametrization does not (the planner builds its types)."""
