"""Rules of the envvars API: a tool's variables in its one Secret
(:mod:`toolforge_envvars.secret`), every write a compare-and-swap of that Secret.

- create-or-replace: the name and value rules (400), then the quota (``max_variables``
  variables; 409 when a new name would pass it; replacing an existing one always works), then
  one create (no Secret yet) or one replace carrying the ``resourceVersion`` read. When the
  Secret changed meanwhile (409 from the apiserver: a concurrent write by another replica or
  request), the whole step is done again from a fresh read, at most ``update_attempts`` times.
  So concurrent creates can never pass the quota, and a write is all or nothing.
- delete: 404 when absent; the last variable deletes the Secret (with a resourceVersion
  precondition), others replace it without the key.

Values are never logged, nor put in an error message.
"""

from __future__ import annotations

import logging
from typing import Any

from toolforge_envvars.models import Envvar, Quota, check_name, check_value
from toolforge_envvars.secret import secret_for, values_of
from toolforge_envvars.settings import EnvvarsSettings
from toolforge_envvars.storage import ToolImpersonatingSecretStorage
from toolforge_kit.errors import (
    ConflictError,
    NotFoundError,
    ResourceQuotaExceededError,
    UnavailableError,
)

__all__ = ["EnvvarsService", "QuotaExceededError"]

_log = logging.getLogger(__name__)


class QuotaExceededError(ConflictError):
    """409: the tool has ``max_variables`` variables already."""


class EnvvarsService:
    """The envvars API's operations for one tool at a time (``tool`` is the verified tool).

    Raises (every method): the storage's errors (403, 503...), plus those documented.
    """

    def __init__(self, storage: ToolImpersonatingSecretStorage, settings: EnvvarsSettings):
        self._storage = storage
        self._settings = settings

    async def list(self, tool: str) -> list[Envvar]:
        """Every variable of the tool, sorted by name."""
        values = values_of(await self._storage.get(tool))
        return [Envvar(name=n, value=v) for n, v in sorted(values.items())]

    async def show(self, tool: str, name: str) -> Envvar:
        """One variable.

        Raises:
            InvalidEnvvar: ``name`` is not a valid name (400). NotFoundError: no such variable.
        """
        check_name(name)
        values = values_of(await self._storage.get(tool))
        if name not in values:
            raise NotFoundError(f"Envvar '{name}' does not exist")
        return Envvar(name=name, value=values[name])

    async def put(self, tool: str, name: str, value: str) -> tuple[Envvar, bool]:
        """Create or replace a variable; returns it and whether it is new.

        Raises:
            InvalidEnvvar: a rule is broken (400). QuotaExceededError: a new name beyond
                ``max_variables`` (409). UnavailableError: still conflicting after
                ``update_attempts`` tries.
        """
        check_name(name)
        check_value(value, max_bytes=self._settings.max_value_bytes)
        for _ in range(self._settings.update_attempts):
            current = await self._storage.get(tool)
            values = values_of(current)
            new = name not in values
            if new and len(values) >= self._settings.max_variables:
                raise QuotaExceededError(
                    f"the tool has {len(values)} of {self._settings.max_variables} variables; "
                    "delete one first (toolforge envvars delete NAME)"
                )
            values[name] = value
            wanted = secret_for(tool, self._storage.secret_name, values)
            try:
                if current is None:
                    await self._create(tool, wanted)
                else:
                    wanted["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                    await self._storage.replace(tool, wanted)
            except ConflictError:
                continue  # changed (or created) meanwhile: read again
            return Envvar(name=name, value=value), new
        raise self._contention(tool)

    async def _create(self, tool: str, secret: dict[str, Any]) -> None:
        """Create the tool's Secret. Concurrent creates of it all count against the namespace's
        ResourceQuota of Secrets until the apiserver settles them, so a create that loses the
        race may be refused as "exceeded quota" (403) rather than 409: when the Secret exists by
        then, that is a conflict like any other.

        Raises:
            ConflictError: it exists (created meanwhile). ResourceQuotaExceededError: the
                namespace really has no room for one more Secret.
        """
        try:
            await self._storage.create(tool, secret)
        except ResourceQuotaExceededError:
            if await self._storage.get(tool) is not None:
                raise ConflictError("the tool's variables were created meanwhile") from None
            raise

    async def delete(self, tool: str, name: str) -> Envvar:
        """Delete a variable; returns its last value.

        Raises:
            InvalidEnvvar: ``name`` is not a valid name. NotFoundError: no such variable.
        """
        check_name(name)
        for _ in range(self._settings.update_attempts):
            current = await self._storage.get(tool)
            values = values_of(current)
            if current is None or name not in values:
                raise NotFoundError(f"Envvar '{name}' does not exist")
            last = values.pop(name)
            version = current["metadata"]["resourceVersion"]
            try:
                if values:
                    wanted = secret_for(tool, self._storage.secret_name, values)
                    wanted["metadata"]["resourceVersion"] = version
                    await self._storage.replace(tool, wanted)
                elif not await self._storage.delete(tool, resource_version=version):
                    continue  # gone meanwhile: read again (then 404)
            except ConflictError:
                continue
            return Envvar(name=name, value=last)
        raise self._contention(tool)

    async def quota(self, tool: str) -> Quota:
        """How many variables the tool may have and has."""
        used = len(values_of(await self._storage.get(tool)))
        return Quota(quota=self._settings.max_variables, used=used)

    def _contention(self, tool: str) -> UnavailableError:
        _log.warning("tool %s: envvars Secret still changing after retries", tool)
        return UnavailableError(
            "the tool's variables are being changed by another request; try again",
            retry_after=self._settings.retry_after_seconds,
        )
