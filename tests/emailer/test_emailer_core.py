"""The live configuration model, the durable state and the mails (pure code)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from emailer.pods import job_pod, terminated
from pydantic import ValidationError

from golden import assert_golden
from toolforge_emailer.config import EmailConfig, config_errors, parse_config
from toolforge_emailer.events import JobEvent, pod_events
from toolforge_emailer.mails import compose, to_message
from toolforge_emailer.state import EmailerState, PendingTool, decode, encode

NOW = datetime(2026, 12, 4, 22, 30, tzinfo=UTC)
GOLDEN = Path(__file__).parent / "golden"


def failure(job: str, code: int = 3, tool: str = "mytool", uid: str | None = None) -> JobEvent:
    pod = job_pod(
        tool=tool,
        job=job,
        uid=uid or f"uid-{job}",
        statuses=[terminated(code, cid=f"containerd://{job}")],
    )
    event = pod_events(pod, NOW)[-1]
    event.output = ["working...", f"giving up with {code}"]
    return event


# ----- configuration -------------------------------------------------------------------------


def test_configmap_strings_are_parsed_as_upstream_writes_them() -> None:
    config = parse_config(
        {
            "send_emails_for_real": "no",
            "task_compose_emails_loop_sleep": " 20 ",
            "smtp_server_port": "1025",
        }
    )
    assert (config.send_emails_for_real, config.task_compose_emails_loop_sleep) == (False, 20)
    assert config.recipient("mytool") == "tools.mytool@toolforge.org"
    assert parse_config(None) == EmailConfig()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"task_compose_emails_loop_sleep": "soon"}, "task_compose_emails_loop_sleep"),
        ({"task_compose_emails_loop_sleep": "0"}, "greater than 0"),
        ({"smtp_server_port": "70000"}, "smtp_server_port"),
        ({"email_from_addr": "noreply@toolforge.org\r\nBcc: x@evil"}, "not an e-mail address"),
        ({"email_to_domain": "toolforge.org>"}, "not a DNS name"),
        ({"send_emails_for_real": "perhaps"}, "send_emails_for_real"),
        ({"task_compose_emails_loop_slep": "5"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_configuration_is_refused_with_a_message(data: dict[str, str], problem: str) -> None:
    with pytest.raises(ValidationError) as error:
        parse_config(data)
    assert any(problem in message for message in config_errors(error.value))


# ----- state ---------------------------------------------------------------------------------


def test_state_round_trips_and_batches_per_tool_window() -> None:
    state = EmailerState(initialised=True)
    for job in ("a", "b"):
        assert state.queue(failure(job), NOW, max_per_tool=10)
        state.mark_seen(f"uid-{job}", f"end:containerd://{job}")
    state.queue(failure("c", tool="other"), NOW + timedelta(seconds=30), max_per_tool=10)
    back = decode(encode(state))
    assert back == state
    assert back.is_seen("uid-a", "end:containerd://a")
    assert back.due_tools(NOW + timedelta(seconds=399), 400) == []
    assert back.due_tools(NOW + timedelta(seconds=400), 400) == ["mytool"]
    assert back.due_tools(NOW + timedelta(seconds=430), 400) == ["mytool", "other"]
    assert back.keep_only_pods({"uid-a"}) == 1
    assert list(back.seen) == ["uid-a"]


def test_a_tool_over_its_pending_limit_is_counted_not_stored() -> None:
    state = EmailerState()
    assert [state.queue(failure(f"j{i}"), NOW, max_per_tool=2) for i in range(4)] == [
        True, True, False, False,
    ]  # fmt: skip
    assert (len(state.pending["mytool"].events), state.pending["mytool"].dropped) == (2, 2)


def test_undecodable_state_is_an_error() -> None:
    with pytest.raises(ValueError, match="gzip"):
        decode(b"not gzip")
    with pytest.raises(ValueError, match="gzip"):
        decode(encode(EmailerState())[:-4])


# ----- mails ---------------------------------------------------------------------------------


def test_one_failure_mail_names_the_job_and_the_exit_code() -> None:
    mail = compose("mytool", PendingTool(since=NOW, events=[failure("boom")]), EmailConfig(), NOW)
    assert mail.to == "tools.mytool@toolforge.org"
    assert mail.subject == '[Toolforge] tool "mytool": job boom failed: exit code 3'
    assert_golden(GOLDEN / "mail-one-failure.txt", mail.text)
    assert_golden(GOLDEN / "mail-one-failure.html", mail.html + "\n")


def test_a_batch_lists_every_job_and_counts_what_it_cannot_list() -> None:
    events = [failure(f"job-{i}", code=i + 1) for i in range(10)]
    config = EmailConfig(max_events_per_mail=8)
    mail = compose("mytool", PendingTool(since=NOW, events=events, dropped=1), config, NOW)
    assert mail.subject == '[Toolforge] tool "mytool": 11 events of 10 jobs, 10 failures'
    assert mail.events == 11
    for i in range(8):
        assert f"Job job-{i} (one-off):" in mail.text
    assert "job-8" not in mail.text
    assert "... and 3 more events" in mail.text


def test_tool_controlled_text_is_escaped_in_html_and_never_reaches_headers() -> None:
    event = failure("x")
    event.output = ["<script>alert(1)</script>"]
    event.message = "Subject: injected\r\nBcc: evil@example.org"
    mail = compose("mytool", PendingTool(since=NOW, events=[event]), EmailConfig(), NOW)
    assert "<script>" not in mail.html
    assert "&lt;script&gt;" in mail.html
    message = to_message(mail)
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == mail.subject
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["Message-ID"] == f"<jobs-emailer.{mail.id}@toolforge.org>"
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "Bcc: evil@example.org" in text.get_content()


def test_the_mail_id_is_stable_for_the_same_events() -> None:
    pending = PendingTool(since=NOW, events=[failure("a"), failure("b")])
    one = compose("mytool", pending, EmailConfig(), NOW)
    two = compose("mytool", pending, EmailConfig(), NOW + timedelta(hours=1))
    assert one.id == two.id
    other = compose("mytool", PendingTool(since=NOW, events=[failure("a")]), EmailConfig(), NOW)
    assert other.id != one.id


def test_outputs_are_dropped_when_the_state_would_not_fit() -> None:
    state = EmailerState()
    for i in range(3):
        state.queue(failure(f"j{i}"), NOW, max_per_tool=10)
    assert state.drop_outputs() == 3
    events = state.pending["mytool"].events
    assert {e.output_note for e in events} == {"output left out: too many pending events"}
    assert all(e.output is None for e in events)
