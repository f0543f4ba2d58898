"""Toolforge logs API: a tool's job logs from the log store, paged and followed."""
