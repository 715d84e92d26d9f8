"""Scaling laws fitted to results: the laws and their fitters, Approaches 1-3, uncertainty, the
fit report and the figures. No JAX."""
