"""RN 623 event backbone shared by every service."""
