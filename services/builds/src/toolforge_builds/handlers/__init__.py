"""The builds API's routes, one :class:`fastapi.APIRouter` per area (thin handlers over
:class:`~toolforge_builds.service.BuildsService`)."""
