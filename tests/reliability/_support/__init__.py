"""Shared helpers for the reliability and security tests (processes, fault proxy, raw HTTP/2)."""
