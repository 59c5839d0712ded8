"""retention-svc: retention schedules, legal holds, coordinated purges, records access."""
