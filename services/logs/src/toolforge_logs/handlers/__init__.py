"""The logs API's routes (thin handlers over :class:`~toolforge_logs.service.LogsService`)."""
