"""Turning request bodies into engine jobs: the prompt's tokens, a sampler with the request's
settings, and the limits, all checked before anything reaches the engine."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmcore.api.llm import LLM
from llmcore.chat import ChatContentError
from llmcore.chat.messages import media_parts, text_only_messages
from llmcore.chat.tools import tool_schema, with_instructions
from llmcore.engine import mtmd
from llmcore.errors import LLMCoreError
from llmcore.grammar import GrammarMatcher, grammar_for, schema_for_response_format
from llmcore.engine.sampling import Sampler, SamplingError, SamplingParams
from llmcore.engine.infill import ExtraChunk, infill_prompt
from llmcore.engine.sequence import sampler_for
from llmcore.media.image import image_from_request
from llmcore.server.batcher import Job
from llmcore.server.errors import APIError
from llmcore.server.schemas import ChatCompletionRequest, GenerationFields, InfillRequest, LoraScale


_TOKEN_ID = re.compile(r"\s*[+-]?[0-9]+")


class JobFactory:
    """Builds jobs for one model and ``n_slots`` slots of ``n_ctx_slot`` tokens (a request's limit),
    each request's settings over the server's ``defaults`` (see :func:`~llmcore.server.create_app`).
    Images come as data URLs or base64, or as ``file://`` names inside ``media_path`` where one is given."""

    def __init__(self, llm: LLM, n_ctx_slot: int, n_slots: int, defaults: dict[str, Any], *, n_keep: int = 0,
                 media_path: Path | None = None) -> None:
        self.llm = llm
        self.media_path = media_path
        self.n_keep = n_keep
        self.n_ctx_slot = n_ctx_slot
        self.n_slots = n_slots
        settings = dict(defaults)
        # checked now: a bad default fails at startup, not in every request
        self.default_grammar = grammar_for(settings.pop("grammar", None), settings.pop("json_schema", None))
        if self.default_grammar:
            self.default_grammar.matcher(llm.tokenizer)
        self.default_settings = settings
        self.default_params = SamplingParams.from_settings({"seed": llm.seed} | settings)

    # -- prompts ------------------------------------------------------------------------------

    def text_prompt(self, prompt: str | list[int] | list[str]) -> list[int]:
        """Tokens of a completion prompt: text (special tokens parsed, BOS as the model wants) or ids."""
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
            prompt = prompt[0]
        if isinstance(prompt, str):
            return self.llm.tokenize(prompt, add_special=True, parse_special=True)
        return self.check_ids(prompt, "prompt")

    def chat_prompt(self, request: ChatCompletionRequest) -> tuple[list[int], list[mtmd.Chunk] | None]:
        """The prompt's tokens, and its chunks when it holds images (the tokens are then one id per
        position, see :func:`llmcore.engine.mtmd.prompt_ids`)."""
        messages, urls = self.with_media_markers(request.message_dicts())
        if request.uses_tools:
            messages = with_instructions(messages, request.tools, tool_schema(request.tools, request.tool_choice))
        text = self.llm.chat_template.render(messages, add_generation_prompt=True)
        if not urls:
            return self.llm.tokenize(text, add_special=True, parse_special=True), None
        pictures = self.images(urls, request.message_dicts())
        try:
            chunks = mtmd.tokenize(self.llm.tokenizer, self.llm.projector, text, pictures)
        except LLMCoreError as error:  # a media marker typed into a message, say
            raise APIError(400, str(error), param="messages") from None
        return mtmd.prompt_ids(chunks), chunks

    def with_media_markers(self, messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        """``messages`` with each image part a text part holding the media marker, and the parts' URLs
        in order, as llama-server reads them. Without a projector (``--mmproj``) an image part is a
        400 naming its message, as the schema names any other part this model cannot take."""
        if self.llm.projector is None:
            try:
                return text_only_messages(messages), []
            except ChatContentError as error:
                raise APIError(400, f"field '{error.param}': {error.problem}", param=error.param) from None
        return media_parts(messages, mtmd.MEDIA_MARKER)

    def images(self, urls: Sequence[str], messages: list[dict[str, Any]]) -> list[np.ndarray]:
        """The images of ``urls`` decoded (data URLs, base64, ``file://`` names in ``--media-path``);
        a 400 names the content part of ``messages`` whose image cannot be read."""
        places = [f"messages.{i}.content.{j}" for i, message in enumerate(messages)
                  if isinstance(message.get("content"), list)
                  for j, part in enumerate(message["content"]) if part.get("type") == "image_url"]
        pictures = []
        for url, place in zip(urls, places):
            try:
                pictures.append(image_from_request(url, self.media_path))
            except LLMCoreError as error:
                raise APIError(400, f"{place}: {error}", param=place) from None
        return pictures

    def infill_prompt(self, request: InfillRequest) -> list[int]:
        """llama-server's FIM prompt of an /infill request, within a batch and the slot's context."""
        for field in ("input_prefix", "input_suffix"):
            value = getattr(request, field)
            if not isinstance(value, str):
                self.check_ids([t for t in value if isinstance(t, int)], field)
        prompt = self.llm.tokenize(request.prompt, add_special=False, parse_special=True) if request.prompt else []
        return infill_prompt(self.llm.tokenizer, request.input_prefix, request.input_suffix,
                             [ExtraChunk(c.text, c.filename) for c in request.input_extra], prompt,
                             n_batch=self.llm.context.n_batch, n_ctx=self.n_ctx_slot)

    def check_ids(self, ids: Sequence[int], param: str) -> list[int]:
        n_vocab = self.llm.n_vocab
        for index, token in enumerate(ids):
            if not 0 <= token < n_vocab:
                raise APIError(400, f"token id {token} is outside the vocabulary (0..{n_vocab - 1})",
                               param=f"{param}.{index}")
        return list(ids)

    # -- jobs ---------------------------------------------------------------------------------

    def job(self, request: GenerationFields, prompt_tokens: list[int], *, max_tokens: int | None,
            n_probs: int = 0, want_probs: bool = False, post_sampling_probs: bool = False,
            chunks: list[mtmd.Chunk] | None = None) -> Job:
        """A job for ``prompt_tokens`` (with ``chunks``: a prompt holding images, see :meth:`chat_prompt`);
        ``max_tokens`` None or <= 0 means until the slot's context is full."""
        request.check_supported()
        if not prompt_tokens:
            raise APIError(400, "the prompt is empty", param="prompt")
        if len(prompt_tokens) > self.n_ctx_slot:
            images = " (its images included)" if chunks else ""
            raise APIError(400, f"the request exceeds the available context size: the prompt has "
                                f"{len(prompt_tokens)} tokens{images}, a slot holds {self.n_ctx_slot} "
                                "(raise -c or lower -np)", type="exceed_context_size_error")
        if request.id_slot >= self.n_slots:
            raise APIError(400, f"id_slot {request.id_slot} does not exist (the server has {self.n_slots} slots)",
                           param="id_slot")
        return Job(prompt_tokens=prompt_tokens, sampler=self.sampler(request, n_probs),
                   max_tokens=-1 if max_tokens is None or max_tokens <= 0 else max_tokens,
                   stops=request.stop_strings(), ignore_eos=request.ignore_eos, n_probs=n_probs,
                   want_probs=want_probs, post_sampling_probs=post_sampling_probs,
                   cache_prompt=request.cache_prompt, id_slot=request.id_slot,
                   n_keep=self.n_keep if request.n_keep is None else request.n_keep, n_discard=request.n_discard,
                   lora=None if request.lora is None else self.lora_scales(request.lora, "lora"), chunks=chunks)

    def lora_scales(self, entries: Sequence[LoraScale], param: str) -> list[float]:
        """Every adapter's scale from llama-server's ``[{"id": i, "scale": s}, ...]``: an adapter not
        listed gets 0 (as its construct_lora_list); an unknown id is a 400."""
        scales = [0.0] * len(self.llm.lora_adapters)
        for index, entry in enumerate(entries):
            if not 0 <= entry.id < len(scales):
                raise APIError(400, f"LoRA adapter id {entry.id} does not exist (the server has {len(scales)} "
                                    "adapters: see GET /lora-adapters)", param=f"{param}.{index}.id")
            scales[entry.id] = entry.scale
        return scales

    def sampler(self, request: GenerationFields, n_probs: int) -> Sampler:
        settings = self.default_settings | request.sampling_settings() | {"n_probs": n_probs}
        if request.logit_bias is not None:
            settings["logit_bias"] = self.logit_bias(request)
        if settings.get("seed") is None:
            settings["seed"] = self.llm.seed
        try:
            params = SamplingParams.from_settings(settings)
        except SamplingError as error:
            raise APIError(400, str(error), param=error.field) from None
        return sampler_for(self.llm.model, params, self.n_ctx_slot, self.constraint(request))

    def constraint(self, request: GenerationFields) -> GrammarMatcher | None:
        """The grammar a request's ``grammar`` (GBNF), ``json_schema`` or ``response_format`` imposes."""
        uses_tools = isinstance(request, ChatCompletionRequest) and request.uses_tools
        field = ("grammar" if request.grammar is not None else "tools" if uses_tools
                 else "response_format" if request.response_format else "json_schema")
        try:  # a bad grammar or schema is a 400 naming the field it came in
            json_schema = request.json_schema
            if uses_tools:
                json_schema = tool_schema(request.tools, request.tool_choice)
            elif request.response_format:
                json_schema = schema_for_response_format(request.response_format)
            grammar = grammar_for(request.grammar, json_schema) or self.default_grammar
            return grammar.matcher(self.llm.tokenizer) if grammar else None
        except LLMCoreError as error:
            raise APIError(400, str(error), param=field) from None

    def logit_bias(self, request: GenerationFields) -> dict[int, float]:
        """OpenAI's ``{"token id": bias}`` or llama-server's ``[[token id or text, bias], ...]``;
        a bias of ``false`` bans the token; text stands for each of its tokens."""
        if not request.logit_bias:
            return {}
        pairs = request.logit_bias.items() if isinstance(request.logit_bias, dict) else request.logit_bias
        bias: dict[int, float] = {}
        for key, value in pairs:
            amount = -math.inf if value is False else float(value)
            for token in self._bias_tokens(key):
                bias[token] = amount
        return bias

    def _bias_tokens(self, key: int | str) -> list[int]:
        if isinstance(key, int) or _TOKEN_ID.fullmatch(key):  # llama.cpp's strtol: ASCII digits only ("²" is text)
            return self.check_ids([int(key)], "logit_bias")
        return self.llm.tokenize(key, add_special=False, parse_special=False)
