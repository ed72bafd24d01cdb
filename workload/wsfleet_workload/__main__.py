"""python -m wsfleet_workload: serve until SIGTERM, drain, exit 0."""

from wsfleet_workload.main import main

raise SystemExit(main())
