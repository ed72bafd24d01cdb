"""The bundled Socket.IO workload: fan-out over Redis, replay, presence, drain, health and metrics.

What it shares with the operator (the environment names it reads, its endpoints, its metric names,
its log schema) lives in ``wsfleet_common``, which both sides import.
"""
