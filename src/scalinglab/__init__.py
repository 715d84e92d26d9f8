"""scalinglab: scaling-law experiments from one YAML file. See docs/architecture.md for the packages
and which of them may import JAX."""
