"""The private note written back to the ticket, and the marker that makes posting idempotent."""

from __future__ import annotations

import html
import uuid

from app.clients.llm import Enhancement


def marker(note_key: uuid.UUID) -> str:
    """A visible reference in the note: if we crash after posting, we find it instead of posting twice.
    (Visible text, because ServiceDesk Plus may strip HTML comments.)"""
    return f"ai-agents ref {note_key}"


def render_note(enhancement: Enhancement, note_key: uuid.UUID) -> str:
    parts = [
        "<p><b>AI triage summary</b></p>",
        f"<p>{html.escape(enhancement.summary)}</p>",
    ]
    if enhancement.category or enhancement.priority:
        parts.append(
            "<p>Suggested category: "
            f"{html.escape(enhancement.category or 'n/a')}; suggested priority: "
            f"{html.escape(enhancement.priority or 'n/a')}</p>"
        )
    if enhancement.next_steps:
        steps = "".join(f"<li>{html.escape(step)}</li>" for step in enhancement.next_steps)
        parts.append(f"<p><b>Suggested next steps</b></p><ol>{steps}</ol>")
    parts.append(f"<p><small>{marker(note_key)}</small></p>")
    return "".join(parts)


def find_marked_note(notes: list[dict[str, object]], note_key: uuid.UUID) -> str | None:
    """Id of a note already carrying our marker, if any."""
    needle = marker(note_key)
    for note in notes:
        if needle in str(note.get("description", "")):
            return str(note.get("id", "")) or "unknown"
    return None
