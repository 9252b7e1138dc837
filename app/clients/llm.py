"""LLM enhancement through any OpenAI-compatible chat completions API.

Retries (429/5xx/timeouts, `LLM_MAX_RETRIES`, exponential backoff with jitter, `Retry-After` honoured)
are ours, through stamina like the ServiceDesk Plus client's, not the SDK's: the SDK's sleep between
retries knows nothing of a deadline. Every completion, its retries included, runs within
`call_deadline` (clipped to the job's), and the response body is capped (`app.clients.limits`).
`http_client` is the transport seam: an httpx client (the SDK accepts httpx and httpx2 ones), e.g. with
a mock transport; tests instead point LLM_BASE_URL at a local fake.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, cast

import httpx
import openai
import stamina
from openai.types.chat import ChatCompletion
from openai.types.chat.chat_completion import Choice
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from pydantic import BaseModel, Field, ValidationError, field_validator

from app.clients import limits
from app.clients.errors import PermanentError, TransientError, parse_retry_after
from app.clients.servicedesk import Ticket
from app.metrics import LLM_ERRORS, LLM_LATENCY, LLM_TOKENS
from app.prompts import Prompt

MAX_RESPONSE_BYTES = 1024 * 1024  # a completion of LLM_MAX_TOKENS (≤ 16 000) is well below 100 KB
# The SDK's own retry schedule, kept: 0.5 s doubling to 8 s; a longer Retry-After (up to a minute)
# is honoured when the deadline leaves room for it, else the job retries later.
RETRY_WAIT_INITIAL = 0.5
RETRY_WAIT_MAX = 8.0
RETRY_AFTER_MAX = 60.0

_tracer = trace.get_tracer(__name__)
# The OpenTelemetry generative-AI conventions' names. No prompt, no completion text: only the model,
# the finish reasons and the token counts.
PROVIDER = "openai"  # the API spoken; any OpenAI-compatible server reports as such
TOTAL_TOKENS = "gen_ai.usage.total_tokens"  # not in the conventions (input + output); kept for queries


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
        call_deadline: float = 120.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        http_client: Any = None,
    ) -> None:
        self._api_key = api_key
        self._model = model
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._attempts = max_retries + 1
        self._call_deadline = call_deadline
        self._client = openai.OpenAI(
            api_key=api_key(),
            base_url=base_url,
            timeout=timeout,
            max_retries=0,  # see the module docstring
            # The SDK takes an httpx client as well as an httpx2 one; only its annotation says otherwise.
            http_client=cast(Any, http_client or _http_client(max_response_bytes)),
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
        with limits.deadline(self._call_deadline, "call deadline"):
            backoff = limits.backoff_within_deadline(
                initial=RETRY_WAIT_INITIAL, max_wait=RETRY_WAIT_MAX, retry_after_max=RETRY_AFTER_MAX
            )
            for attempt in stamina.retry_context(on=backoff, attempts=self._attempts, timeout=None):
                with attempt:
                    return self._complete_once(system, user)
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    def _complete_once(self, system: str, user: str) -> str:
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.request.model": self._model,
            "gen_ai.request.max_tokens": self._max_tokens,
            "gen_ai.request.temperature": self._temperature,
        }
        # One span per attempt; the HTTP client span of the request nests inside it.
        with _tracer.start_as_current_span(
            f"chat {self._model}", kind=SpanKind.CLIENT, attributes=attributes
        ):
            return self._complete_traced(system, user)

    def _complete_traced(self, system: str, user: str) -> str:
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
        except limits.DeadlineExceeded as error:
            LLM_ERRORS.labels("deadline").inc()
            raise TransientError(f"llm: {error}", safe_to_repeat=False) from None
        except limits.ResponseTooLarge as error:
            LLM_ERRORS.labels("too_large").inc()
            raise PermanentError(f"llm: {error}") from None
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
        _describe(trace.get_current_span(), completion)
        if not completion.choices:
            LLM_ERRORS.labels("empty").inc()
            raise PermanentError("llm returned no content")
        return _content(completion.choices[0])


def _content(choice: Choice) -> str:
    """The answer's text, or why there is none worth parsing. Each is permanent: the same prompt with
    the same settings gets the same cut or the same refusal, so a retry would only bill it again."""
    if choice.message.refusal or choice.finish_reason == "content_filter":
        # The refusal's wording stays out of the job's error: it may quote the ticket.
        LLM_ERRORS.labels("model_refused").inc()
        raise PermanentError(f"llm refused to answer (finish_reason={choice.finish_reason})")
    if choice.finish_reason == "length":
        # Incomplete even when what came happens to parse: never taken for the answer.
        LLM_ERRORS.labels("truncated").inc()
        raise PermanentError("llm output was cut at LLM_MAX_TOKENS (finish_reason=length)")
    if not choice.message.content:
        LLM_ERRORS.labels("empty").inc()
        raise PermanentError("llm returned no content")
    return choice.message.content


def _http_client(max_response_bytes: int) -> httpx.Client:
    """The SDK's default connection limits, on a transport that enforces deadlines and the cap."""
    transport = limits.LimitedTransport(
        max_response_bytes=max_response_bytes,
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
    )
    return httpx.Client(transport=transport, follow_redirects=True)


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


def _describe(span: Span, completion: ChatCompletion) -> None:
    """The response's model, finish reasons and token usage on the chat span (what the server sent;
    odd or missing values are left out, as for the counter)."""
    # The SDK builds the completion without validating it: any field may be missing or of another type.
    model = getattr(completion, "model", None)
    if isinstance(model, str) and model:
        span.set_attribute("gen_ai.response.model", model)
    choices: Any = getattr(completion, "choices", None)
    reasons = [getattr(c, "finish_reason", None) for c in choices] if isinstance(choices, list) else []
    if finished := [reason for reason in reasons if isinstance(reason, str)]:
        span.set_attribute("gen_ai.response.finish_reasons", finished)
    usage = getattr(completion, "usage", None)
    if usage is None:
        return
    for key, value in (
        ("gen_ai.usage.input_tokens", getattr(usage, "prompt_tokens", None)),
        ("gen_ai.usage.output_tokens", getattr(usage, "completion_tokens", None)),
        (TOTAL_TOKENS, getattr(usage, "total_tokens", None)),
    ):
        if isinstance(value, int) and value >= 0:
            span.set_attribute(key, value)


def _strip_fences(content: str) -> str:
    """Some OpenAI-compatible servers wrap JSON in Markdown fences despite `response_format`."""
    text = content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.removesuffix("```").strip()
    return text
