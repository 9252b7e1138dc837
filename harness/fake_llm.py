"""A fake OpenAI-compatible chat completions server (`/v1/chat/completions`).

It checks `response_format` as OpenAI's API does: only `text`, `json_object` and `json_schema` are
types it knows, and `json_object` is refused (400) unless the messages mention JSON. Without JSON mode
the answer comes in Markdown fences, as chat models write it. Besides a clean answer it can give, for a
prompt that mentions a given ticket id (`shape`), the other shapes a real server produces: fenced JSON
in JSON mode, an answer cut at `max_tokens` (`finish_reason: length`), and a refusal (`message.refusal`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from harness.http_fake import FakeServer, Reply

DEFAULT_ENHANCEMENT = {
    "summary": "User cannot reach the VPN since this morning.",
    "category": "Network",
    "priority": "High",
    "next_steps": ["Check the VPN gateway status", "Ask for the client log"],
}

DEFAULT_USAGE = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}

FENCED, TRUNCATED, REFUSED = "fenced", "truncated", "refused"
SHAPES = (FENCED, TRUNCATED, REFUSED)
RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")
REFUSAL = "I'm sorry, I can't help with that request."


class FakeLLM(FakeServer):
    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.content: str = json.dumps(DEFAULT_ENHANCEMENT)
        self.usage: dict[str, int] = dict(DEFAULT_USAGE)
        self.completions: list[dict[str, Any]] = []
        self._shapes: dict[str, str] = {}  # a string the prompt contains (a ticket id) -> shape

    def shape(self, key: str, shape: str) -> None:
        """Answer every prompt that contains `key` in `shape` (one of SHAPES) until `clear_shape`."""
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}; one of {SHAPES}")
        self._shapes[key] = shape

    def clear_shape(self, key: str) -> None:
        self._shapes.pop(key, None)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if method != "POST" or path != "/v1/chat/completions":
            return Reply(404, {"error": {"message": f"no route {method} {path}"}})
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply(401, {"error": {"message": "invalid api key", "type": "invalid_request_error"}})
        request = json.loads(body)
        if not isinstance(request.get("messages"), list) or not request.get("model"):
            return Reply(400, {"error": {"message": "model and messages are required"}})
        refused = _response_format_error(request)
        if refused:
            return Reply(400, {"error": {"message": refused, "type": "invalid_request_error"}})
        self.completions.append(request)
        message, finish_reason = self._answer(request)
        return Reply(
            200,
            {
                "id": f"chatcmpl-{len(self.completions)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
                "usage": self.usage,
            },
        )

    def _answer(self, request: dict[str, Any]) -> tuple[dict[str, Any], str]:
        prompt = json.dumps(request["messages"])
        shape = next((shape for key, shape in self._shapes.items() if key in prompt), None)
        json_mode = (request.get("response_format") or {}).get("type") in ("json_object", "json_schema")
        content = self.content
        if shape == REFUSED:
            return {"role": "assistant", "content": None, "refusal": REFUSAL}, "stop"
        if shape == TRUNCATED:
            return {"role": "assistant", "content": content[: len(content) // 2]}, "length"
        if shape == FENCED or not json_mode:
            content = f"```json\n{content}\n```"
        return {"role": "assistant", "content": content}, "stop"

    def fault_key(self, method: str, path: str, body: bytes) -> str:
        """Faults are keyed by a ticket id found in the prompt, so parallel jobs do not steal them."""
        try:
            text = json.dumps(json.loads(body).get("messages", []))
        except ValueError:
            return super().fault_key(method, path, body)
        for key in self._fault_keys():
            if key in text:
                return key
        return super().fault_key(method, path, body)

    def _fault_keys(self) -> list[str]:
        return [key for key, queue in self._faults.items() if queue]


def _response_format_error(request: dict[str, Any]) -> str | None:
    """What OpenAI's API answers 400 for in `response_format` (None: acceptable)."""
    response_format = request.get("response_format")
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind not in RESPONSE_FORMAT_TYPES:
        return f"Invalid value for 'response_format.type': supported values are {RESPONSE_FORMAT_TYPES}."
    if kind == "json_object" and "json" not in json.dumps(request["messages"]).lower():
        return "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'."
    return None
