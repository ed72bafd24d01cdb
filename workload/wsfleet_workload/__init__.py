"""The bundled Socket.IO workload.

So far this package holds the contract shared with the operator (contract.py):
endpoint paths, environment variable names and metric names. The server itself
(drain, replay, presence, health, metrics) is built on top of that contract.
"""
