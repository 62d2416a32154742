"""Reliability and security: concurrency, crashes, hostile input, secrets (see README.md here)."""
