"""The kit's streaming helpers: byte streams cut into lines with a length cap."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from toolforge_kit.streaming import LineSplitter, iter_lines


def test_splitter_across_chunks() -> None:
    splitter = LineSplitter(100)
    assert splitter.feed(b"one\ntw") == [b"one"]
    assert splitter.feed(b"o\n\nthr") == [b"two", b""]
    assert splitter.feed(b"ee") == []
    assert splitter.flush() == [b"three"]
    assert splitter.flush() == []


def test_splitter_cuts_long_lines_and_drops_their_rest() -> None:
    splitter = LineSplitter(4)
    assert splitter.feed(b"abcdefgh") == [b"abcd"]
    assert splitter.feed(b"ijk\nlm") == []
    assert splitter.feed(b"\nnopq\n") == [b"lm", b"nopq"]
    assert splitter.feed(b"rstuv\nw") == [b"rstu"]
    assert splitter.flush() == [b"w"]
    with pytest.raises(ValueError, match="positive"):
        LineSplitter(0)


async def test_iter_lines_includes_the_last_unterminated_line() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in (b"a\nb", b"c\n", b"d"):
            yield chunk

    assert [line async for line in iter_lines(chunks(), 10)] == [b"a", b"bc", b"d"]
