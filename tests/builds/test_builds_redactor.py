"""Streaming redactor: same result for every chunking, never a partial secret, bounded hold-back.

The oracle marks every character covered by any occurrence of any (effective) secret and
replaces each run of marked characters with ``***``: the redactor must agree with it for
every way of cutting the input into chunks.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import re
from collections.abc import Iterable

import pytest

from toolforge_builds.logs import (
    MIN_SECRET_LENGTH,
    REDACTED,
    Redactor,
    base64_forms,
    build_log_redactor,
    registry_credential_secrets,
)


def oracle(text: str, secrets: Iterable[str], min_length: int = MIN_SECRET_LENGTH) -> str:
    pieces = {p for s in secrets for p in re.split(r"\r?\n", s) if len(p) >= min_length}
    covered = [False] * len(text)
    for piece in pieces:
        start = text.find(piece)
        while start != -1:
            covered[start : start + len(piece)] = [True] * len(piece)
            start = text.find(piece, start + 1)
    out, i = [], 0
    while i < len(text):
        if covered[i]:
            while i < len(text) and covered[i]:
                i += 1
            out.append(REDACTED)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def stream(redactor: Redactor, chunks: Iterable[str | bytes]) -> str:
    r = redactor.fresh()
    return "".join(r.feed(chunk) for chunk in chunks) + r.flush()


def cuts(text: str, positions: Iterable[int]) -> list[str]:
    bounds = [0, *sorted(positions), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


SECRETS = ["correct-horse", "horse-battery", "battery-staple", "s3cr3t!", "tiny"]
TEXT = (
    "login with correct-horse-battery-staple now\n"
    "again: s3cr3t!s3cr3t! and horse-batter (not quite) and correct-hors\n"
    "tiny is too short to hide; end with a partial s3cr3"
)


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("user=hunter2-pw ok", ["hunter2-pw"], "user=*** ok"),
        # overlapping secrets become one ***, nothing of either leaks
        ("xxabcdefghijklxx", ["abcdefgh", "efghijkl"], "xx***xx"),
        # one secret inside another
        ("<outer-secret-value>", ["outer-secret-value", "secret"], "<***>"),
        # adjacent occurrences merge
        ("[token1token1]", ["token1"], "[***]"),
        # repeated occurrences that overlap themselves
        ("aaaaaaaaaa", ["aaaaaa"], "***"),
        # short secrets are not redacted (MIN_SECRET_LENGTH)
        ("debug=true mode=prod", ["true", "prod", "", "12345"], "debug=true mode=prod"),
        # a multi-line secret is redacted line by line
        ("k: line-one-abc\nk: line-two-def\n", ["line-one-abc\nline-two-def"], "k: ***\nk: ***\n"),
        ("no secrets at all", [], "no secrets at all"),
        ("regex chars .*+?", ["s .*+?"], "regex char***"),
    ],
)
def test_examples(text: str, secrets: list[str], expected: str) -> None:
    assert Redactor(secrets).redact(text) == expected
    assert oracle(text, secrets) == expected


def test_every_two_way_split_gives_the_same_output() -> None:
    redactor = Redactor(SECRETS)
    expected = oracle(TEXT, SECRETS)
    assert "correct-horse" not in expected
    assert "s3cr3t!" not in expected
    assert "tiny" in expected
    assert "horse-batter (not quite)" in expected
    for i in range(len(TEXT) + 1):
        assert stream(redactor, cuts(TEXT, [i])) == expected, i


def test_every_three_way_split_gives_the_same_output() -> None:
    text = "a=correct-horse-battery-staple;b=s3cr3t!s3cr3t!\nc=horse-batter"
    redactor = Redactor(SECRETS)
    expected = oracle(text, SECRETS)
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            assert stream(redactor, cuts(text, [i, j])) == expected, (i, j)


def test_every_byte_split_of_utf8_gives_the_same_output() -> None:
    secrets = ["päßwörd-✓", "ünïcødé-sécret"]
    text = "x päßwörd-✓ y ünïcødé-sécret ✓✓ päßwörd- z"
    data = text.encode()
    redactor = Redactor(secrets)
    expected = oracle(text, secrets)
    for i in range(len(data) + 1):
        assert stream(redactor, [data[:i], data[i:]]) == expected, i


def test_one_character_at_a_time() -> None:
    redactor = Redactor(SECRETS)
    assert stream(redactor, list(TEXT)) == oracle(TEXT, SECRETS)


@pytest.mark.parametrize("seed", range(300))
def test_random_texts_and_random_chunks(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    alphabet = rng.choice(["ab", "abc\n", "xyz-_", "aé✓\n"])
    secrets = [
        "".join(rng.choice(alphabet.replace("\n", "") or "a") for _ in range(rng.randint(3, 12)))
        for _ in range(rng.randint(0, 4))
    ]
    parts = []
    for _ in range(rng.randint(0, 40)):
        if secrets and rng.random() < 0.4:
            secret = rng.choice(secrets)
            parts.append(
                secret[rng.randint(0, len(secret) // 2) :] if rng.random() < 0.3 else secret
            )
        else:
            parts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))))
    text = "".join(parts)
    redactor = Redactor(secrets)
    positions = [rng.randint(0, len(text)) for _ in range(rng.randint(0, 12))]
    chunks: list[str | bytes] = list(cuts(text, positions))
    if rng.random() < 0.5:
        data = text.encode()
        byte_positions = [rng.randint(0, len(data)) for _ in range(rng.randint(0, 12))]
        bounds = [0, *sorted(byte_positions), len(data)]
        chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    assert stream(redactor, chunks) == oracle(text, secrets)


def test_hold_back_is_bounded_by_the_longest_secret() -> None:
    secrets = ["0123456789abcdef", "short-secret"]
    redactor = Redactor(secrets).fresh()
    text = "the quick brown fox jumps over the lazy dog " * 5
    emitted = 0
    for i, char in enumerate(text, start=1):
        emitted += len(redactor.feed(char))
        assert i - emitted <= len(secrets[0]) - 1
    assert emitted + len(redactor.flush()) == len(text)


def test_everything_up_to_a_newline_is_emitted_at_once() -> None:
    redactor = Redactor(["a-very-long-secret-value-indeed"]).fresh()
    assert redactor.feed("line one\nline two\n") == "line one\nline two\n"
    assert redactor.feed("partial") == ""
    assert redactor.flush() == "partial"


def test_a_partial_secret_is_never_emitted() -> None:
    secret = "ghp_0123456789abcdefghij"  # noqa: S105 - test data
    for i in range(1, len(secret)):
        redactor = Redactor([secret]).fresh()
        first = redactor.feed("token: " + secret[:i])
        assert first == "token: "[: max(0, 7 + i - (len(secret) - 1))]
        rest = redactor.feed(secret[i:] + " end") + redactor.flush()
        assert first + rest == "token: *** end"
    assert Redactor([secret]).redact("token: " + secret + " end") == "token: *** end"


def test_flush_resets_and_fresh_redactors_are_independent() -> None:
    redactor = Redactor(["secret-value"])
    one, two = redactor.fresh(), redactor.fresh()
    assert one.feed("x secret-") == ""  # 11 characters are held back
    assert two.feed("plain text, no newline") == "plain text,"
    assert one.feed("value y") + one.flush() == "x *** y"
    assert one.feed("secret-value") + one.flush() == REDACTED
    assert two.flush() == " no newline"


def test_min_length_is_configurable_and_validated() -> None:
    assert Redactor(["abc"], min_length=3).redact("xabcx") == "x***x"
    assert Redactor(["abc"]).redact("xabcx") == "xabcx"
    assert Redactor(["abc", "abcdef"]).secrets == ("abcdef",)
    with pytest.raises(ValueError, match="min_length"):
        Redactor([], min_length=0)


# ------------------------------------------------------------------- registry credentials


def test_base64_forms_are_found_at_every_alignment() -> None:
    rng = random.Random(7)  # noqa: S311 - reproducible test data
    secret = "robot$mytool:Zr8t2PqLw9xY"  # noqa: S105 - test data
    forms = base64_forms(secret)
    for prefix_length in range(9):
        for suffix_length in range(4):
            prefix = bytes(rng.randrange(256) for _ in range(prefix_length))
            suffix = bytes(rng.randrange(256) for _ in range(suffix_length))
            blob = base64.b64encode(prefix + secret.encode() + suffix).decode()
            urlsafe = base64.urlsafe_b64encode(prefix + secret.encode() + suffix).decode()
            assert any(form in blob for form in forms), (prefix_length, suffix_length)
            assert any(form in urlsafe for form in forms), (prefix_length, suffix_length)


def test_docker_config_auth_and_whole_config_are_redacted() -> None:
    user, password = "robot$mytool", "Zr8t2PqLw9xYv3"
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    config = json.dumps({"auths": {"registry.local": {"auth": auth}}})
    config_b64 = base64.b64encode(config.encode()).decode()
    redactor = Redactor(registry_credential_secrets(user, password))
    log = (
        f"config: {config}\n"
        f"secret data: {config_b64}\n"
        f"url: https://{user}:{password}@registry.local/v2/\n"
        f"encoded url: https://robot%24mytool:{password}@registry.local/\n"
        f"auth header: Basic {auth}\n"
    )
    out = redactor.redact(log)
    assert password not in out
    assert auth not in out
    # whatever remains of the double-encoded config no longer decodes to the credentials
    remaining = out.split("secret data: ")[1].split("\n")[0]
    assert "***" in remaining
    for piece in remaining.split("***"):
        for shift in range(4):
            chunk = piece[shift:]
            chunk = chunk[: len(chunk) - len(chunk) % 4]
            decoded = base64.b64decode(chunk, validate=False)
            assert password.encode() not in decoded
            assert auth.encode() not in decoded
    assert "registry.local/v2/" in out  # the rest of the line stays readable


def test_credential_encodings_of_special_characters() -> None:
    password = 'p@ss w0rd"\\x'  # noqa: S105 - test data
    secrets = registry_credential_secrets("robot", password)
    assert "p%40ss%20w0rd%22%5Cx" in secrets  # URL-encoded (RFC 3986)
    assert 'p@ss w0rd\\"\\\\x' in secrets  # JSON string body (RFC 8259)
    redactor = Redactor(secrets)
    assert redactor.redact(json.dumps({"password": password})) == '{"password": "***"}'


def test_build_log_redactor_covers_env_values_and_registry_credentials() -> None:
    user, password = "robot$mytool", "Zr8t2PqLw9xYv3"
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    redactor = build_log_redactor(["api-token-123", "prod"], (user, password))
    log = f"token api-token-123 env prod auth {auth} pw {password}"
    assert redactor.redact(log) == "token *** env prod auth *** pw ***"
    assert build_log_redactor(["api-token-123"], None).redact(password) == password
