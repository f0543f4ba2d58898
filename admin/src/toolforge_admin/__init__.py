"""Toolforge admin tooling: PKI and tool onboarding."""
