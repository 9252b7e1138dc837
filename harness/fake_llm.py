"""A fake OpenAI-compatible chat completions server (`/v1/chat/completions`)."""

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


class FakeLLM(FakeServer):
    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.content: str = json.dumps(DEFAULT_ENHANCEMENT)
        self.usage: dict[str, int] = dict(DEFAULT_USAGE)
        self.completions: list[dict[str, Any]] = []

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
        self.completions.append(request)
        return Reply(
            200,
            {
                "id": f"chatcmpl-{len(self.completions)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": self.usage,
            },
        )

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
