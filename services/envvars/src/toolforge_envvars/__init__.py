"""The envvars API: a tool's secrets, stored in its namespace and injected into its pods."""
