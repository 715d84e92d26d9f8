"""Corpora, tokenizers, the held-out split, training batches and objectives' examples. No JAX."""
