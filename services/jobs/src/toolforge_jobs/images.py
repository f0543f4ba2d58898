"""The container images jobs may use, from ConfigMap ``tf-public/image-config``.

The ConfigMap's key ``images-v1.yaml`` (REFERENCE.md, "Kubernetes mapping") maps a shortname
to its image, its aliases and its state::

    python3.11:
      image: registry.local/toolforge/python3.11:stable
      aliases: [tf-python311, python3]
      state: stable

Only ``stable`` images are listed and usable; an alias names the same image as its shortname.
Other keys of an entry are ignored, so the file can grow without breaking this parser.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from toolforge_jobs.errors import JobSpecError

__all__ = [
    "CONFIGMAP_KEY",
    "CONFIGMAP_NAME",
    "CONFIGMAP_NAMESPACE",
    "STABLE",
    "ImageCatalog",
    "ImageConfigError",
    "ImageInfo",
    "ImageList",
    "UnknownImageError",
    "parse_image_config",
]

CONFIGMAP_NAMESPACE = "tf-public"
CONFIGMAP_NAME = "image-config"
CONFIGMAP_KEY = "images-v1.yaml"
STABLE = "stable"

_log = logging.getLogger(__name__)


class ImageConfigError(ValueError):
    """The image configuration cannot be read or has the wrong shape."""


class UnknownImageError(JobSpecError):
    """``imagename`` is neither a listed shortname nor an alias of one."""


@dataclass(frozen=True)
class ImageInfo:
    """One image: ``shortname`` (the mapping key), ``image`` (the reference pods pull),
    ``aliases`` (other names for it) and ``state`` (``stable``, ``deprecated``, ...)."""

    shortname: str
    image: str
    aliases: tuple[str, ...] = ()
    state: str = STABLE


class _Entry(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    image: str
    aliases: list[str] = []
    state: str


class ImageList:
    """The images of one configuration; lookups by shortname or alias."""

    def __init__(self, images: Iterable[ImageInfo]) -> None:
        self._all = sorted(images, key=lambda i: i.shortname)
        self._by_name: dict[str, ImageInfo] = {}
        for info in self._all:
            for name in (info.shortname, *info.aliases):
                if name in self._by_name:
                    raise ImageConfigError(
                        f"image name {name!r} is used by both "
                        f"{self._by_name[name].shortname!r} and {info.shortname!r}"
                    )
                self._by_name[name] = info

    def listed(self) -> list[ImageInfo]:
        """The stable images, sorted by shortname (the ``images`` endpoint)."""
        return [i for i in self._all if i.state == STABLE]

    def resolve(self, name: str) -> ImageInfo:
        """The stable image called ``name`` (a shortname or an alias).

        Raises:
            UnknownImageError: (field ``imagename``) no stable image has that name; the
                message lists the valid names.
        """
        info = self._by_name.get(name)
        if info is not None and info.state == STABLE:
            return info
        valid = ", ".join(
            i.shortname + (f" (aliases: {', '.join(i.aliases)})" if i.aliases else "")
            for i in self.listed()
        )
        raise UnknownImageError("imagename", f"{name!r} is not a known image; use one of: {valid}")

    def state_of(self, name: str) -> str | None:
        """The state (``stable``, ``deprecated``, ...) of the image called ``name`` (a
        shortname or an alias, in any state); ``None`` when no image has that name."""
        info = self._by_name.get(name)
        return info.state if info is not None else None

    def shortname_for(self, image: str) -> str | None:
        """The shortname of the entry whose ``image`` is ``image``, if any."""
        return next((i.shortname for i in self._all if i.image == image), None)


def parse_image_config(text: str) -> ImageList:
    """Parse the ``images-v1.yaml`` text.

    Raises:
        ImageConfigError: not YAML, not a mapping of shortname -> ``{image, aliases?,
            state}``, or a name used twice.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ImageConfigError(f"{CONFIGMAP_KEY} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ImageConfigError(f"{CONFIGMAP_KEY} must be a mapping of shortname to image")
    images = []
    for shortname, raw in data.items():
        try:
            entry = _Entry.model_validate(raw)
        except ValidationError as exc:
            raise ImageConfigError(f"{CONFIGMAP_KEY}: entry {shortname!r}: {exc}") from None
        images.append(ImageInfo(str(shortname), entry.image, tuple(entry.aliases), entry.state))
    return ImageList(images)


class ImageCatalog:
    """The image list, fetched on demand and kept for ``ttl_seconds``.

    ``fetch`` returns the ``images-v1.yaml`` text (the storage layer reads the ConfigMap).
    When a refresh fails (fetch raises, or the text does not parse) the last good list is kept
    and the refresh is retried after ``retry_seconds``; without a good list the error is
    raised as :class:`ImageConfigError`. Concurrent callers share one fetch.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[str]],
        ttl_seconds: float,
        *,
        retry_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl_seconds
        self._retry = min(retry_seconds, ttl_seconds)
        self._clock = clock
        self._images: ImageList | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> ImageList:
        """The current list, refreshed first when older than the TTL.

        Raises:
            ImageConfigError: no list was ever fetched and this fetch failed.
        """
        if self._images is not None and self._clock() < self._refresh_at:
            return self._images
        async with self._lock:
            if self._images is not None and self._clock() < self._refresh_at:
                return self._images
            try:
                images = parse_image_config(await self._fetch())
            except Exception as exc:
                if self._images is None:
                    if isinstance(exc, ImageConfigError):
                        raise
                    raise ImageConfigError(f"cannot read the image list: {exc}") from exc
                _log.warning("keeping the previous image list; refresh failed: %s", exc)
                self._refresh_at = self._clock() + self._retry
                return self._images
            self._images = images
            self._refresh_at = self._clock() + self._ttl
            return images
