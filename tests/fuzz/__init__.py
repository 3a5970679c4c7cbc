"""Bounded fuzzers, run by ``make fuzz`` (never by ``make test``).

``python -m tests.fuzz core --cases N --seconds S`` feeds mutated PDUs to the
sans-I/O SMPP core (:mod:`tests.fuzz.fuzz_core`). The PDU mutator and the named
hostile PDUs live in :mod:`tests.fuzz.mutate`, for every mode to share.
"""
