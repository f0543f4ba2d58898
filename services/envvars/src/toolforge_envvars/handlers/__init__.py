"""The envvars API's routes (thin handlers over
:class:`~toolforge_envvars.service.EnvvarsService`)."""
