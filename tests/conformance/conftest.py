"""Conformance suites: one per extension point, run over every registered implementation.

Each suite lists the implementations from the registry (entry points plus run-time
registrations) and fails when one has no way to be built here, so a newly registered
backend cannot pass by being left out.
"""

from __future__ import annotations

import os

# keep BLAS/torch/llama.cpp to one thread: the CI machine has two cores shared by everyone
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
