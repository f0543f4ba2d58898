"""The jobs API's own error: a job field that breaks a rule.

Every other error is one of the kit's (:mod:`toolforge_kit.errors`), each with the HTTP status
it is answered with; the storage layer (:mod:`toolforge_jobs.storage`, through
:class:`toolforge_kit.KubeClient`) maps Kubernetes answers to them.
"""

from __future__ import annotations

__all__ = ["JobSpecError"]


class JobSpecError(ValueError):
    """400: a job's field breaks a rule that needs more than the request itself to check (the
    tool's home, the image list, the namespace LimitRange, ...).

    ``field`` is the request field (``"filelog_stdout"``, ``"imagename"``, ``"memory"``) and
    ``rule`` the rest of the sentence: ``str(exc)`` is ``"<field> <rule>"``.
    """

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field} {rule}")
        self.field = field
        self.rule = rule
