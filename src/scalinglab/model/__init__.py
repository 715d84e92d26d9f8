"""The Transformer, its parametrizations, counts and attention kernels. transformer and cpu_attention
import JAX; the others do not (the planner builds their types and counts with them)."""
