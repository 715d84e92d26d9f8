"""The results folder and the cache: every path and file name, run states, atomic writes, locks,
and the DataFrame view of a sweep. No JAX."""
