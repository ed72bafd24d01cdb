"""A local Kubernetes control plane for development and tests: built from Go modules, loopback only."""
