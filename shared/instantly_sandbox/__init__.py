"""A local stand-in for Instantly API v2, for tests and the local stack. Never bundled."""
