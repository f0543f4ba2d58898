"""The error every rule of a job's specification raises when it is broken.

Handlers turn a :class:`JobSpecError` into a 400 whose ``messages.error`` holds ``str(exc)``;
the message is a sentence that starts with the field (``"memory 8Gi is above the maximum 4Gi
..."``, ``"retry is only valid for one-off and scheduled jobs"``).
"""

from __future__ import annotations

__all__ = ["JobSpecError"]


class JobSpecError(ValueError):
    """A job's field breaks a rule that needs more than the request itself to check (the
    tool's home, the image list, the namespace LimitRange, ...).

    ``field`` is the request field (``"filelog_stdout"``, ``"imagename"``, ``"memory"``) and
    ``rule`` the rest of the sentence: ``str(exc)`` is ``"<field> <rule>"``.
    """

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field} {rule}")
        self.field = field
        self.rule = rule
