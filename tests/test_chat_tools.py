"""The generic tool-call format: schema per tool_choice, prompt rewriting, reply parsing; the
replies are checked with jsonschema so the schema really admits what the parser accepts."""

from __future__ import annotations

import json

import jsonschema
import pytest

from llmcore.chat.tools import parse_reply, tool_schema, with_instructions
from llmcore.errors import LLMCoreError

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "add", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}},
]
CALL = {"tool_call": {"name": "add", "arguments": {"a": 1, "b": 2}}}
ANSWER = {"response": "Hello!"}


def test_auto_admits_calls_and_answers_required_only_calls():
    jsonschema.validate(CALL, tool_schema(TOOLS, "auto"))
    jsonschema.validate(ANSWER, tool_schema(TOOLS, "auto"))
    jsonschema.validate(CALL, tool_schema(TOOLS, "required"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(ANSWER, tool_schema(TOOLS, "required"))
    with pytest.raises(jsonschema.ValidationError):  # arguments must fit the tool's parameters
        jsonschema.validate({"tool_call": {"name": "add", "arguments": {"a": "x"}}}, tool_schema(TOOLS))


def test_a_named_tool_choice_allows_only_that_tool():
    schema = tool_schema(TOOLS, {"type": "function", "function": {"name": "get_weather"}})
    jsonschema.validate({"tool_call": {"name": "get_weather", "arguments": {"city": "Oslo"}}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(CALL, schema)
    with pytest.raises(LLMCoreError):
        tool_schema(TOOLS, {"type": "function", "function": {"name": "nope"}})
    with pytest.raises(LLMCoreError):
        tool_schema([{"type": "function", "function": {}}])


def test_replies_parse_into_openai_tool_calls():
    content, calls = parse_reply(json.dumps(CALL))
    assert content is None and calls[0]["type"] == "function"
    assert calls[0]["function"]["name"] == "add" and json.loads(calls[0]["function"]["arguments"]) == {"a": 1, "b": 2}
    assert parse_reply(json.dumps(ANSWER)) == ("Hello!", None)
    assert parse_reply('{"tool_call": {"na') == ('{"tool_call": {"na', None)  # cut by max_tokens


def test_history_is_written_in_the_format_the_model_is_asked_for():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "1+2?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "add", "content": "3"},
    ]
    out = with_instructions(messages, TOOLS, tool_schema(TOOLS))
    assert out[0]["role"] == "system" and out[0]["content"].startswith("Be brief.") and "get_weather" in out[0]["content"]
    assert json.loads(out[2]["content"]) == {"tool_call": {"name": "add", "arguments": {"a": 1, "b": 2}}}
    assert out[3]["role"] == "user" and json.loads(out[3]["content"])["tool_response"]["content"] == "3"
    assert messages[2]["tool_calls"]  # the caller's messages are not modified
