"""Dispatch of a sweep's runs as submitit jobs, the checks before them, the jobs' states, and their
resources. No JAX: the job body (job.py) imports the training code only inside the job, after
setting up its process."""
