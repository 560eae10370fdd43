"""Request bodies of the server's endpoints: OpenAI's fields plus the sampling fields llama-server
accepts. Unknown fields are ignored (as OpenAI clients send fields a local server cannot use)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic_core import PydanticCustomError

from llmcore.chat import ChatContentError, text_parts
from llmcore.engine.sampling import SamplingParams
from llmcore.server.errors import APIError


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

#: how a request spells a sampling field where JSON differs from the Python value: OpenAI's
#: ``{"token id": bias}`` or llama-server's ``[[token id or text, bias], ...]`` (false bans the token)
_REQUEST_SPELLINGS: dict[str, Any] = {
    "logit_bias": dict[str, float | bool] | list[tuple[int | str, float | bool]],
}


def sampling_request_fields(params: type[BaseModel]) -> type[BaseModel]:
    """The request fields of the sampling settings: every field of ``params`` (SamplingParams) a
    request may set, optional (None: the server's default), as llama-server names them."""
    fields = {name: (_REQUEST_SPELLINGS.get(name, field.annotation) | None, None)
              for name, field in params.model_fields.items() if (field.json_schema_extra or {}).get("request", True)}
    return create_model("SamplingFields", __base__=_Body, **fields)


class LoraScale(_Body):
    """One LoRA adapter's scale, by its index in ``GET /lora-adapters`` (llama-server's shape)."""

    id: int
    scale: float = 0.0


class GenerationFields(sampling_request_fields(SamplingParams)):
    """Sampling and stopping fields shared by every generating endpoint (None: the server's default)."""

    model: str | None = None
    stream: bool = False
    stop: str | list[str] | None = None
    ignore_eos: bool = False
    cache_prompt: bool = True
    id_slot: int = -1
    n_keep: int | None = Field(None, ge=-1, description="prompt tokens a context shift keeps (-1: all)")
    n_discard: int = Field(0, ge=0, description="tokens a context shift drops (0: half of what is not kept)")
    lora: list[LoraScale] | None = None  # llama-server's per-request adapter scales; those not listed: 0
    n: int = Field(1, description="choices per request; only 1 is supported")
    response_format: dict[str, Any] | None = None  # OpenAI's: text, json_object or json_schema
    grammar: str | None = None  # GBNF, as llama-server takes it
    json_schema: dict[str, Any] | bool | None = None

    def check_supported(self) -> None:
        """Answer 400 for what llmcore cannot do, rather than silently ignoring it."""
        if self.n != 1:
            raise APIError(400, "only n=1 is supported", param="n")
        constraints = [name for name in ("grammar", "json_schema", "response_format") if getattr(self, name)]
        if len(constraints) > 1:
            raise APIError(400, f"give only one of {' and '.join(constraints)}", param=constraints[1])

    def sampling_settings(self) -> dict[str, Any]:
        """The sampling fields this request sets (the rest keep the server's defaults)."""
        return {name: getattr(self, name) for name in SamplingParams.model_fields
                if getattr(self, name, None) is not None}

    def stop_strings(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

class CompletionRequest(GenerationFields):
    """``POST /v1/completions`` (OpenAI's legacy text completion)."""

    prompt: str | list[int] | list[str]
    max_tokens: int | None = 16
    logprobs: int | None = Field(None, ge=0, le=100)
    echo: bool = False
    suffix: str | None = None

    def check_supported(self) -> None:
        super().check_supported()
        if self.echo:
            raise APIError(400, "echo is not supported", param="echo")
        if self.suffix:
            raise APIError(400, "suffix (fill-in-the-middle) is not supported", param="suffix")
        if isinstance(self.prompt, list) and self.prompt and isinstance(self.prompt[0], str) and len(self.prompt) > 1:
            raise APIError(400, "only one prompt per request is supported", param="prompt")

class ChatMessageIn(_Body):
    """One message of a conversation; fields other than role and content go to the template as they are.
    ``content`` is a string or a list of text and ``image_url`` parts; an audio or other part is a 400 on
    ``messages.N.content``, checked by the chat templates' own :func:`text_parts` (an image part for a
    server without ``--mmproj`` is refused by the job factory, which knows the model)."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None

    @field_validator("content")
    @classmethod
    def _text_and_images(cls, content: str | list[dict[str, Any]] | None) -> str | list[dict[str, Any]] | None:
        try:
            return text_parts(content, images=True)
        except ChatContentError as error:
            raise PydanticCustomError("text_only", "{problem}", {"problem": error.problem}) from None

class ChatCompletionRequest(GenerationFields):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessageIn] = Field(min_length=1)
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = "auto"

    @property
    def uses_tools(self) -> bool:
        """Whether the reply is a tool call or an answer in llama-server's generic tool format."""
        return bool(self.tools) and self.tool_choice != "none"

    def message_dicts(self) -> list[dict[str, Any]]:
        return [m.model_dump(exclude_none=True) for m in self.messages]

class NativeCompletionRequest(GenerationFields):
    """llama-server's own ``POST /completion``."""

    prompt: str | list[int]
    n_predict: int = -1
    n_probs: int = Field(0, ge=0, le=100)
    post_sampling_probs: bool = False

class InfillChunk(_Body):
    """One ``input_extra`` item of ``/infill``: a file's text and (optionally) its name."""

    text: str
    filename: str = "tmp"


class InfillRequest(GenerationFields):
    """llama-server's ``POST /infill``: the middle between ``input_prefix`` and ``input_suffix``
    (strings, or lists of strings and token ids), with ``input_extra`` files as context and
    ``prompt`` (text) where the middle starts; answered as ``/completion``."""

    input_prefix: str | list[str | int]
    input_suffix: str | list[str | int]
    input_extra: list[InfillChunk] = []
    prompt: str = ""
    n_predict: int = -1
    n_probs: int = Field(0, ge=0, le=100)
    post_sampling_probs: bool = False


class EmbeddingRequest(_Body):
    """``/v1/embeddings`` (OpenAI's ``input``) and llama-server's ``/embedding`` (``content`` too)."""

    input: str | list[str] | list[int] | list[list[int]] | None = None
    content: str | list[str] | list[int] | list[list[int]] | None = None
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    embd_normalize: int | None = None

class RerankRequest(_Body):
    """llama-server's ``/rerank``: Jina's ``documents`` or TEI's ``texts``."""

    query: str
    documents: list[str] | None = None
    texts: list[str] | None = None
    top_n: int | None = Field(None, ge=0)
    return_text: bool = False
    model: str | None = None

class TokenizeRequest(_Body):
    content: str
    add_special: bool = False
    parse_special: bool = True
    with_pieces: bool = False

class DetokenizeRequest(_Body):
    tokens: list[int]

class ApplyTemplateRequest(_Body):
    messages: list[ChatMessageIn] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None

    def message_dicts(self) -> list[dict[str, Any]]:
        return [m.model_dump(exclude_none=True) for m in self.messages]
