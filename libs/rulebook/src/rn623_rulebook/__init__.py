"""RN 623 rulebook: business-day calendars and effective-dated rules, with no I/O."""
