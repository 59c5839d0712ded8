"""protocol-svc: the front door of the platform (protocol numbers, demands, answers)."""
