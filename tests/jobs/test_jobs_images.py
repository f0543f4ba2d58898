"""The image list (ConfigMap tf-public/image-config, key images-v1.yaml) and its cache."""

from __future__ import annotations

import pytest

from toolforge_jobs.images import (
    ImageCatalog,
    ImageConfigError,
    UnknownImageError,
    parse_image_config,
)

# The content devtools puts in the ConfigMap, plus one deprecated image.
CONFIG = """\
bookworm:
  image: registry.local/toolforge/bookworm:stable
  aliases: [tf-bookworm]
  state: stable
python3.11:
  image: registry.local/toolforge/python3.11:stable
  aliases: [tf-python311, python3]
  state: stable
buster:
  image: registry.local/toolforge/buster:stable
  aliases: [tf-buster]
  state: deprecated
  variables: {extra: ignored}
"""


def test_only_stable_images_are_listed() -> None:
    images = parse_image_config(CONFIG)
    assert [(i.shortname, i.image) for i in images.listed()] == [
        ("bookworm", "registry.local/toolforge/bookworm:stable"),
        ("python3.11", "registry.local/toolforge/python3.11:stable"),
    ]


@pytest.mark.parametrize("name", ["python3.11", "tf-python311", "python3"])
def test_aliases_resolve_to_the_same_image(name: str) -> None:
    info = parse_image_config(CONFIG).resolve(name)
    assert info.shortname == "python3.11"
    assert info.image == "registry.local/toolforge/python3.11:stable"


@pytest.mark.parametrize("name", ["python2", "buster", "tf-buster", "Bookworm", ""])
def test_unknown_or_unlisted_names_are_refused_with_the_valid_ones(name: str) -> None:
    with pytest.raises(UnknownImageError) as exc:
        parse_image_config(CONFIG).resolve(name)
    assert exc.value.field == "imagename"
    message = str(exc.value)
    assert message.startswith(f"imagename {name!r} is not a known image")
    assert "bookworm (aliases: tf-bookworm)" in message
    assert "python3.11 (aliases: tf-python311, python3)" in message
    assert "buster" not in message.split("use one of:")[1]


def test_shortname_for_an_image() -> None:
    images = parse_image_config(CONFIG)
    assert images.shortname_for("registry.local/toolforge/bookworm:stable") == "bookworm"
    assert images.shortname_for("docker.io/library/debian") is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: [", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("a: {aliases: [x], state: stable}\n", "entry 'a'"),
        ("a: {image: i, state: stable}\nb: {image: j, aliases: [a], state: stable}\n", "both"),
    ],
)
def test_bad_configs(text: str, problem: str) -> None:
    with pytest.raises(ImageConfigError, match=problem):
        parse_image_config(text)


class Source:
    """A ConfigMap stand-in: returns ``text`` or raises ``error``, and counts the reads."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.error: Exception | None = None
        self.reads = 0

    async def fetch(self) -> str:
        self.reads += 1
        if self.error is not None:
            raise self.error
        return self.text


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_catalog_refreshes_after_the_ttl() -> None:
    source, clock = Source(CONFIG), Clock()
    catalog = ImageCatalog(source.fetch, ttl_seconds=60, clock=clock)
    first = await catalog.get()
    clock.now += 59
    assert await catalog.get() is first
    assert source.reads == 1
    source.text = "bookworm: {image: registry.local/toolforge/bookworm:v2, state: stable}\n"
    clock.now += 2
    assert [i.image for i in (await catalog.get()).listed()] == [
        "registry.local/toolforge/bookworm:v2"
    ]
    assert source.reads == 2


async def test_catalog_keeps_the_last_good_list_when_a_refresh_fails() -> None:
    source, clock = Source(CONFIG), Clock()
    catalog = ImageCatalog(source.fetch, ttl_seconds=60, retry_seconds=5, clock=clock)
    good = await catalog.get()
    clock.now += 61
    source.error = ConnectionError("apiserver down")
    assert await catalog.get() is good
    assert await catalog.get() is good  # not retried before retry_seconds
    assert source.reads == 2
    source.error = None
    source.text = "a: ["  # a broken edit of the ConfigMap is a failed refresh too
    clock.now += 6
    assert await catalog.get() is good
    assert source.reads == 3
    source.text = CONFIG.replace("bookworm:stable", "bookworm:v3")
    clock.now += 6
    assert (await catalog.get()).resolve("bookworm").image.endswith(":v3")


async def test_catalog_without_a_good_list_raises() -> None:
    source = Source(CONFIG)
    source.error = ConnectionError("apiserver down")
    catalog = ImageCatalog(source.fetch, ttl_seconds=60)
    with pytest.raises(ImageConfigError, match="apiserver down"):
        await catalog.get()
    source.error = None
    assert (await catalog.get()).resolve("python3").shortname == "python3.11"
