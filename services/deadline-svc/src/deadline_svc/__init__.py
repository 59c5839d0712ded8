"""deadline-svc: deadline tracking, warnings, breaches and recalculation."""
