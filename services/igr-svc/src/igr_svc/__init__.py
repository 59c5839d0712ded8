"""igr-svc: quarterly IGR per operator and coverage, goals, projections, indicators."""
