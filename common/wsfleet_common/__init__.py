"""What the operator and the bundled workload share, and nothing else.

Two modules, each pure of either side: ``contract`` (the environment variable names, ports,
endpoint paths and metric names the operator renders and the workload reads) and ``logs`` (the
one JSON log schema both processes write). Both images install this package; the operator's
image holds no workload code and the workload's no operator code.
"""
