"""End-to-end, fault and security suite of the RN 623 platform."""
