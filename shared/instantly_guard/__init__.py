"""instantly-guard: the library shared by the Cloud Functions that secure an Instantly.ai integration."""

__version__ = "0.1.0"
