"""Images the build service made for a tool (pure: names, references, the pod rules).

A job may run, besides the image-config list, the images the build service pushed for its own
tool (REFERENCE.md, "The wire as production serves it", "Images"). ``imagename`` then is::

    tool-<tool>/<name>:<tag>                       e.g. tool-foo/web:latest
    tool-<tool>/<name>:<tag>@sha256:<64 hex>       pinned to one manifest

``<name>`` is one or more OCI repository path components and ``<tag>`` an OCI tag (OCI
distribution spec v1.1, "Pulling manifests"). Only the calling tool's images are allowed:
``tool-bar/...`` in tool ``foo``'s request is a 400 (:class:`~toolforge_jobs.errors.JobSpecError`
on ``imagename``); the tool's namespace's image admission policy refuses it too.

Pods pull such an image from the registry's pull endpoint (``<pull address>/tool-<tool>/...``)
with the image pull Secret that onboarding put into the tool's namespace
(``toolforge-admin``, ``registry_pull``), never with the build service's push credentials.
What changes in the pod (REFERENCE.md): the command runs behind the buildpacks ``launcher``
(which sets up the app's environment; script health checks too), and the container gets env
``NO_HOME=1``; ``mount`` defaults to ``none`` (``models.JobSpec``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from toolforge_jobs.errors import JobSpecError

__all__ = [
    "BUILT_IMAGE_PATTERN",
    "LAUNCHER",
    "NO_HOME_ENV",
    "BuiltImage",
    "parse_built_image",
    "repository_prefix",
]

#: The buildpacks launcher on the built image's ``PATH`` (``/cnb/lifecycle/launcher``).
LAUNCHER = "launcher"
#: Env of every container of a built image (upstream: the app has no tool home).
NO_HOME_ENV = {"name": "NO_HOME", "value": "1"}

_TOOL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}"
#: ``imagename`` of a build service image (the whole string).
BUILT_IMAGE_PATTERN = (
    rf"^tool-(?P<tool>{_TOOL})/(?P<name>{_COMPONENT}(?:/{_COMPONENT})*)"
    rf":(?P<tag>{_TAG})(?:@(?P<digest>sha256:[0-9a-f]{{64}}))?$"
)
_BUILT_IMAGE_RE = re.compile(BUILT_IMAGE_PATTERN)


def repository_prefix(tool: str) -> str:
    """``tool-<tool>/``: the registry repositories of ``tool``'s images."""
    return f"tool-{tool}/"


@dataclass(frozen=True)
class BuiltImage:
    """One build service image: ``tool-<tool>/<name>:<tag>[@<digest>]``."""

    tool: str
    name: str
    tag: str
    digest: str | None = None

    @property
    def repository(self) -> str:
        """``tool-<tool>/<name>`` (the registry repository)."""
        return f"{repository_prefix(self.tool)}{self.name}"

    @property
    def shortname(self) -> str:
        """The ``imagename`` form: ``tool-<tool>/<name>:<tag>[@<digest>]``."""
        pinned = f"@{self.digest}" if self.digest else ""
        return f"{self.repository}:{self.tag}{pinned}"

    def reference(self, registry: str) -> str:
        """The reference pods pull: ``<registry>/<shortname>`` (``registry`` is
        ``host[:port]``); with a digest the container runtime pulls that manifest."""
        return f"{registry}/{self.shortname}"


def parse_built_image(imagename: str, tool: str) -> BuiltImage:
    """The build service image ``imagename`` of ``tool``.

    Raises:
        JobSpecError: (field ``imagename``, answered 400) not of the form
            ``tool-<tool>/<name>:<tag>[@sha256:<64 hex>]``, or another tool's image.
    """
    match = _BUILT_IMAGE_RE.fullmatch(imagename)
    if match is None:
        hint = " (the tag is required, e.g. :latest)" if ":" not in imagename else ""
        raise JobSpecError(
            "imagename",
            f"{imagename!r} is not a build service image name: use "
            f"tool-{tool}/<name>:<tag>[@sha256:<digest>]{hint}",
        )
    if match["tool"] != tool:
        raise JobSpecError(
            "imagename",
            f"{imagename!r} is an image of tool {match['tool']!r}: a tool may run only its own "
            f"images ({repository_prefix(tool)}...)",
        )
    return BuiltImage(tool, match["name"], match["tag"], match["digest"])
