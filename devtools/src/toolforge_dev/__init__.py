"""Local development cluster for the Toolforge platform APIs."""
