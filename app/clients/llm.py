"""LLM enhancement through any OpenAI-compatible chat completions API.

The `openai` client already retries 429/5xx/timeouts with exponential backoff and jitter and honours
`Retry-After`; we bound it with LLM_MAX_RETRIES and LLM_TIMEOUT_SECONDS and classify what is left.
`http_client` is the transport seam: an httpx client of the flavour the installed `openai` expects
(openai 3 uses httpx2), e.g. with a mock transport; tests instead point LLM_BASE_URL at a local fake.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import openai
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, Field, ValidationError, field_validator

from app.clients.errors import PermanentError, TransientError, parse_retry_after
from app.clients.servicedesk import Ticket
from app.metrics import LLM_ERRORS, LLM_LATENCY, LLM_TOKENS
from app.prompts import Prompt


class Enhancement(BaseModel):
    summary: str = Field(min_length=1, max_length=4000)
    category: str | None = Field(default=None, max_length=200)
    priority: str | None = Field(default=None, max_length=50)
    next_steps: list[str] = Field(default_factory=list, max_length=10)

    @field_validator("next_steps", mode="before")
    @classmethod
    def _strings(cls, value: object) -> object:
        if isinstance(value, list):
            return [str(step) for step in value if str(step).strip()]
        return value


def _retry_after(error: openai.APIStatusError) -> float | None:
    return parse_retry_after(error.response.headers.get("retry-after"))


class LLMClient:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: Callable[[], str],
        model: str,
        timeout: float,
        max_retries: int,
        max_tokens: int,
        temperature: float,
        http_client: Any = None,
    ) -> None:
        self._api_key = api_key
        self._model = model
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._client = openai.OpenAI(
            api_key=api_key(),
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
        )

    @property
    def model(self) -> str:
        return self._model

    def close(self) -> None:
        self._client.close()

    def enhance(self, ticket: Ticket, prompt: Prompt) -> Enhancement:
        system, user = prompt.render(
            ticket_id=ticket.id,
            subject=ticket.subject,
            status=ticket.status,
            priority=ticket.priority,
            category=ticket.category,
            requester=ticket.requester,
            description=ticket.description,
        )
        content = self._complete(system, user)
        try:
            return Enhancement.model_validate(json.loads(_strip_fences(content)))
        except (ValueError, ValidationError):
            LLM_ERRORS.labels("invalid_output").inc()
            raise PermanentError("llm returned output that is not the expected JSON") from None

    def _complete(self, system: str, user: str) -> str:
        started = time.perf_counter()
        outcome = "error"
        try:
            # The key is re-read per call (through the secrets cache) so a rotation needs no restart.
            completion = self._client.with_options(api_key=self._api_key()).chat.completions.create(
                model=self._model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                max_tokens=self._max_tokens,
                temperature=self._temperature,
                response_format={"type": "json_object"},
            )
            outcome = "ok"
        except (openai.APITimeoutError, openai.APIConnectionError) as error:
            LLM_ERRORS.labels("timeout" if isinstance(error, openai.APITimeoutError) else "connect").inc()
            raise TransientError(f"llm unreachable: {type(error).__name__}") from None
        except openai.APIStatusError as error:
            status = error.status_code
            LLM_ERRORS.labels(str(status)).inc()
            if status == 429 or status >= 500:
                raise TransientError(f"llm answered {status}", retry_after=_retry_after(error)) from None
            raise PermanentError(f"llm answered {status}") from None
        finally:
            LLM_LATENCY.labels(outcome).observe(time.perf_counter() - started)
        # The SDK does not validate a 200 body: an HTML page from a proxy comes back as a str.
        if not isinstance(completion, ChatCompletion):
            LLM_ERRORS.labels("invalid_response").inc()
            raise PermanentError("llm returned a response that is not a chat completion")
        _count_tokens(completion)
        if not completion.choices or not completion.choices[0].message.content:
            LLM_ERRORS.labels("empty").inc()
            raise PermanentError("llm returned no content")
        return completion.choices[0].message.content


def _count_tokens(completion: ChatCompletion) -> None:
    """Billed tokens as the server reports them (counted even when the content is then rejected). The
    SDK does not validate `usage`: a server that omits it or sends odd values leaves the counter alone."""
    usage = completion.usage
    if usage is None:
        return
    for kind in ("prompt", "completion"):
        tokens = getattr(usage, f"{kind}_tokens", None)
        if isinstance(tokens, int) and tokens > 0:
            LLM_TOKENS.labels(kind).inc(tokens)


def _strip_fences(content: str) -> str:
    """Some OpenAI-compatible servers wrap JSON in Markdown fences despite `response_format`."""
    text = content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.removesuffix("```").strip()
    return text
