"""wsfleet: the operator package."""
