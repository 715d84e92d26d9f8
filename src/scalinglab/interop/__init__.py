"""Trained runs carried into other tools: Hugging Face transformers folders. No JAX."""
