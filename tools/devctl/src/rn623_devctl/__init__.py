"""Developer CLI for the RN 623 platform."""
