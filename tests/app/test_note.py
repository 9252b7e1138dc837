"""The private note and its idempotency marker (app/worker/note.py, enhance._post_once): no servers.

The end-to-end tests post real notes through the fake ServiceDesk Plus; these pin the note's exact
text, its escaping and the recovery rule, so a change to any of them fails here in milliseconds.
"""

from __future__ import annotations

import uuid

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from app.clients.llm import Enhancement
from app.db.models import AuthMode, NoteState
from app.tenants import TenantInfo
from app.worker import enhance
from app.worker.enhance import _Claimed, _post_once
from app.worker.note import find_marked_note, marker, render_note

KEY = uuid.UUID("12345678-1234-5678-1234-567812345678")
REF = "<p><small>ai-agents ref 12345678-1234-5678-1234-567812345678</small></p>"


def test_marker_is_visible_text_naming_the_key() -> None:
    assert marker(KEY) == "ai-agents ref 12345678-1234-5678-1234-567812345678"


def test_full_note_is_rendered_exactly_and_escaped() -> None:
    enhancement = Enhancement(
        summary="VPN <down> & users",
        category="Network",
        priority="High",
        next_steps=["Check <tunnel>", "Call ISP"],
    )
    assert render_note(enhancement, KEY) == (
        "<p><b>AI triage summary</b></p>"
        "<p>VPN &lt;down&gt; &amp; users</p>"
        "<p>Suggested category: Network; suggested priority: High</p>"
        "<p><b>Suggested next steps</b></p><ol><li>Check &lt;tunnel&gt;</li><li>Call ISP</li></ol>" + REF
    )


def test_summary_only_note_has_no_empty_sections() -> None:
    assert render_note(Enhancement(summary="Printer jam"), KEY) == (
        "<p><b>AI triage summary</b></p><p>Printer jam</p>" + REF
    )


def test_a_missing_category_or_priority_reads_n_a() -> None:
    only_priority = render_note(Enhancement(summary="s", priority="<Low>"), KEY)
    assert "<p>Suggested category: n/a; suggested priority: &lt;Low&gt;</p>" in only_priority
    only_category = render_note(Enhancement(summary="s", category="<HW>"), KEY)
    assert "<p>Suggested category: &lt;HW&gt;; suggested priority: n/a</p>" in only_category


def test_marked_note_is_found_by_its_id_and_others_are_not() -> None:
    notes: list[dict[str, object]] = [
        {"id": "1", "description": "a human's note"},
        {"id": "2", "description": f"<p>x</p><small>{marker(KEY)}</small>"},
    ]
    assert find_marked_note(notes, KEY) == "2"
    assert find_marked_note(notes[:1], KEY) is None
    assert find_marked_note([{"id": "3"}], KEY) is None  # no description at all
    assert find_marked_note([{"description": marker(KEY)}], KEY) == "unknown"  # found, id missing
    assert find_marked_note([{"id": "", "description": marker(KEY)}], KEY) == "unknown"
    assert find_marked_note([{"id": "9", "description": marker(uuid.uuid4())}], KEY) is None


class _ServiceDesk:
    """Records what the worker asks of ServiceDesk Plus (the note path uses two calls)."""

    def __init__(self, notes: list[dict[str, object]]) -> None:
        self.notes = notes
        self.listed: list[str] = []
        self.added: list[tuple[str, str]] = []

    def list_notes(self, ticket_id: str) -> list[dict[str, object]]:
        self.listed.append(ticket_id)
        return self.notes

    def add_note(self, ticket_id: str, description: str) -> str:
        self.added.append((ticket_id, description))
        return "new-note"


def _claimed() -> _Claimed:
    tenant = TenantInfo("acme", "Acme", "http://sdp.invalid", AuthMode.AUTHTOKEN, None, True)
    return _Claimed("T-7", KEY, NoteState.POSTING, 2, tenant)


ENHANCEMENT = Enhancement(summary="Printer jam")


def test_first_post_does_not_look_for_an_earlier_note() -> None:
    sdp = _ServiceDesk([{"id": "old", "description": marker(KEY)}])
    assert _post_once(sdp, _claimed(), ENHANCEMENT, recovering=False) == "new-note"  # type: ignore[arg-type]
    assert sdp.listed == []
    assert sdp.added == [("T-7", render_note(ENHANCEMENT, KEY))]


def test_recovery_reuses_the_note_already_posted() -> None:
    sdp = _ServiceDesk([{"id": "old", "description": marker(KEY)}])
    with capture_logs() as logs:
        assert _post_once(sdp, _claimed(), ENHANCEMENT, recovering=True) == "old"  # type: ignore[arg-type]
    assert (sdp.listed, sdp.added) == (["T-7"], [])
    # The log line an operator finds a recovered note by.
    assert {"event": "note_already_posted", "ticket_id": "T-7", "note_id": "old", "log_level": "info"} in logs


def test_recovery_posts_when_no_note_carries_the_marker() -> None:
    sdp = _ServiceDesk([{"id": "human", "description": "unrelated"}])
    assert _post_once(sdp, _claimed(), ENHANCEMENT, recovering=True) == "new-note"  # type: ignore[arg-type]
    assert sdp.listed == ["T-7"]
    assert sdp.added == [("T-7", render_note(ENHANCEMENT, KEY))]


def test_posting_is_one_span_saying_whether_it_recovers(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(enhance, "_tracer", provider.get_tracer("test"))  # not the process-wide provider
    for recovering in (False, True):
        _post_once(_ServiceDesk([]), _claimed(), ENHANCEMENT, recovering=recovering)  # type: ignore[arg-type]
    spans = exporter.get_finished_spans()
    assert [(s.name, dict(s.attributes or {})) for s in spans] == [
        ("post note", {"ai_agents.recovering": False}),
        ("post note", {"ai_agents.recovering": True}),
    ]
