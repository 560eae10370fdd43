"""llama.cpp's named built-in chat templates (``src/llama-chat.cpp``), as plain string formatters.

They are what llama.cpp uses without ``--jinja``: each sees only ``(role, text)`` pairs, ignores tools,
and is chosen by name (``--chat-template chatml``) or detected from a jinja template's source text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

Chat = Sequence[tuple[str, str]]
Formatter = Callable[[Chat, bool], str]

_C_SPACE = " \t\n\v\f\r"  # what C's isspace() accepts; llama.cpp's trim() strips only these


def _trim(text: str) -> str:
    return text.strip(_C_SPACE)


def _ascii_upper(text: str) -> str:
    # C's toupper() leaves non-ASCII bytes alone
    return "".join(ch.upper() if "a" <= ch <= "z" else ch for ch in text)


def _chatml(chat: Chat, add_ass: bool) -> str:
    out = "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in chat)
    return out + ("<|im_start|>assistant\n" if add_ass else "")


def _mistral_v7(chat: Chat, add_ass: bool, *, space: str) -> str:
    out = ""
    for role, content in chat:
        if role == "system":
            out += f"[SYSTEM_PROMPT]{space}{content}[/SYSTEM_PROMPT]"
        elif role == "user":
            out += f"[INST]{space}{content}[/INST]"
        else:
            out += f"{space}{content}</s>"
    return out


def _mistral_v1_v3(chat: Chat, add_ass: bool, *, leading: str, trailing: str, trim_assistant: bool) -> str:
    out = ""
    inside_turn = False
    for role, content in chat:
        if not inside_turn:
            out += f"{leading}[INST]{trailing}"
            inside_turn = True
        if role == "system":
            out += f"{content}\n\n"
        elif role == "user":
            out += f"{content}{leading}[/INST]"
        else:
            out += f"{trailing}{_trim(content) if trim_assistant else content}</s>"
            inside_turn = False
    return out


def _llama2(chat: Chat, add_ass: bool, *, system: bool, bos_in_history: bool, strip: bool) -> str:
    out = "[INST] "
    inside_turn = True  # the first turn's BOS is the tokenizer's, not ours
    for role, content in chat:
        if strip:
            content = _trim(content)
        if not inside_turn:
            inside_turn = True
            out += "<s>[INST] " if bos_in_history else "[INST] "
        if role == "system":
            # without <<SYS>> support the system text still leads the first user message
            out += f"<<SYS>>\n{content}\n<</SYS>>\n\n" if system else f"{content}\n"
        elif role == "user":
            out += f"{content} [/INST]"
        else:
            out += f"{content}</s>"
            inside_turn = False
    return out


def _role_tagged(
    chat: Chat, add_ass: bool, *, head: str, sep: str, end: str, prompt: str, trim: bool = False
) -> str:
    """Templates of the shape ``{head}{role}{sep}{content}{end}`` with a fixed assistant prompt."""
    out = "".join(f"{head}{role}{sep}{_trim(content) if trim else content}{end}" for role, content in chat)
    return out + (prompt if add_ass else "")


def _monarch(chat: Chat, add_ass: bool) -> str:
    out = "".join(f"{'<s>' if i else ''}{role}\n{content}</s>\n" for i, (role, content) in enumerate(chat))
    return out + ("<s>assistant\n" if add_ass else "")


def _gemma(chat: Chat, add_ass: bool) -> str:
    out = ""
    system_prompt = ""  # gemma has no system turn: it is merged into the next user turn
    for role, content in chat:
        if role == "system":
            system_prompt += _trim(content)
            continue
        role = "model" if role == "assistant" else role
        out += f"<start_of_turn>{role}\n"
        if system_prompt and role != "model":
            out += f"{system_prompt}\n\n"
            system_prompt = ""
        out += f"{_trim(content)}<end_of_turn>\n"
    return out + ("<start_of_turn>model\n" if add_ass else "")


def _orion(chat: Chat, add_ass: bool) -> str:
    out = ""
    system_prompt = ""
    for role, content in chat:
        if role == "system":
            system_prompt += content
        elif role == "user":
            out += "Human: "
            if system_prompt:
                out += f"{system_prompt}\n\n"
                system_prompt = ""
            out += f"{content}\n\nAssistant: </s>"
        else:
            out += f"{content}</s>"
    return out


def _openchat(chat: Chat, add_ass: bool) -> str:
    out = ""
    for role, content in chat:
        if role == "system":
            out += f"{content}<|end_of_turn|>"
        else:
            out += f"GPT4 Correct {_ascii_upper(role[:1])}{role[1:]}: {content}<|end_of_turn|>"
    return out + ("GPT4 Correct Assistant:" if add_ass else "")


def _vicuna(chat: Chat, add_ass: bool, *, orca: bool) -> str:
    out = ""
    for role, content in chat:
        if role == "system":
            out += f"SYSTEM: {content}\n" if orca else f"{content}\n\n"
        elif role == "user":
            out += f"USER: {content}\n"
        elif role == "assistant":
            out += f"ASSISTANT: {content}</s>\n"
    return out + ("ASSISTANT:" if add_ass else "")


def _by_role(chat: Chat, add_ass: bool, *, formats: dict[str, str], prompt: str = "", trim: bool = False) -> str:
    """Templates that wrap each known role's content in a fixed pattern and skip other roles."""
    out = ""
    for role, content in chat:
        if role in formats:
            out += formats[role].format(_trim(content) if trim else content)
    return out + (prompt if add_ass else "")


def _chatglm(chat: Chat, add_ass: bool, *, prefix: str, sep: str, prompt: str) -> str:
    return prefix + _role_tagged(chat, add_ass, head="<|", sep=f"|>{sep}", end="", prompt=prompt)


def _minicpm(chat: Chat, add_ass: bool) -> str:
    return "".join(f"<用户>{_trim(content)}<AI>" if role == "user" else _trim(content) for role, content in chat)


def _rwkv_world(chat: Chat, add_ass: bool) -> str:
    out = ""
    for i, (role, content) in enumerate(chat):
        if role == "system":
            out += f"System: {_trim(content)}\n\n"
        elif role == "user":
            out += f"User: {_trim(content)}\n\n"
            if i == len(chat) - 1:
                out += "Assistant:"
        elif role == "assistant":
            out += f"Assistant: {_trim(content)}\n\n"
    return out


def _granite(chat: Chat, add_ass: bool, *, tool_call_as_assistant: bool) -> str:
    out = ""
    for role, content in chat:
        shown_role = "assistant" if tool_call_as_assistant and role == "assistant_tool_call" else role
        out += f"<|start_of_role|>{shown_role}<|end_of_role|>"
        if role == "assistant_tool_call":
            out += "<|tool_call|>"
        out += f"{content}<|end_of_text|>\n"
    return out + ("<|start_of_role|>assistant<|end_of_role|>" if add_ass else "")


def _gigachat(chat: Chat, add_ass: bool) -> str:
    has_system = bool(chat) and chat[0][0] == "system"
    out = f"<s>{chat[0][1]}<|message_sep|>" if has_system else "<s>"
    for role, content in chat[1 if has_system else 0 :]:
        if role == "user":
            out += f"user<|role_sep|>{content}<|message_sep|>available functions<|role_sep|>[]<|message_sep|>"
        elif role == "assistant":
            out += f"assistant<|role_sep|>{content}<|message_sep|>"
    return out + ("assistant<|role_sep|>" if add_ass else "")


def _bailing_role(role: str) -> str:
    return "HUMAN" if role == "user" else _ascii_upper(role)


def _bailing(chat: Chat, add_ass: bool, *, think: bool) -> str:
    out = "".join(f"<role>{_bailing_role(role)}</role>{content}" for role, content in chat)
    if add_ass:
        out += "<role>ASSISTANT</role>" + ("<think>" if think else "")
    return out


def _bailing2(chat: Chat, add_ass: bool) -> str:
    has_system = bool(chat) and chat[0][0] == "system"
    out = "" if has_system else "<role>SYSTEM</role>detailed thinking off<|role_end|>"
    out += "".join(f"<role>{_bailing_role(role)}</role>{content}<|role_end|>" for role, content in chat)
    return out + ("<role>ASSISTANT</role>" if add_ass else "")


def _smolvlm(chat: Chat, add_ass: bool) -> str:
    out = "<|im_start|>"  # SmolVLM's BOS, though the turns are not chatml
    for role, content in chat:
        if role == "system":
            out += f"{content}\n\n"
        elif role == "user":
            out += f"User: {content}<end_of_utterance>\n"
        else:
            out += f"Assistant: {content}<end_of_utterance>\n"
    return out + ("Assistant:" if add_ass else "")


def _dots1(chat: Chat, add_ass: bool) -> str:
    out = ""
    for role, content in chat:
        if role == "system":
            out += f"<|system|>{content}<|endofsystem|>"
        elif role == "user":
            out += f"<|userprompt|>{content}<|endofuserprompt|>"
        else:
            out += f"<|response|>{content}<|endofresponse|>"
    return out + ("<|response|>" if add_ass else "")


def _hunyuan_moe(chat: Chat, add_ass: bool) -> str:
    out = ""
    for role, content in chat:
        if role == "system":
            out += f"<|startoftext|>{content}<|extra_4|>"
        elif role == "assistant":
            out += f"{content}<|eos|>"
        else:
            out += f"<|startoftext|>{content}<|extra_0|>"
    return out


def _gpt_oss(chat: Chat, add_ass: bool) -> str:
    out = "".join(
        f"<|start|>{role}<|message|>{content}{'<|return|>' if role == 'assistant' else '<|end|>'}"
        for role, content in chat
    )
    return out + ("<|start|>assistant" if add_ass else "")


def _hunyuan_dense(chat: Chat, add_ass: bool) -> str:
    out = ""
    for i, (role, content) in enumerate(chat):
        if i == 0 and role == "system":
            out += f"{content}<｜hy_place▁holder▁no▁3｜>"
        if role == "assistant":
            out += f"<｜hy_Assistant｜>{content}<｜hy_place▁holder▁no▁2｜>"
        elif role == "user":
            out += f"<｜hy_User｜>{content}<｜hy_Assistant｜>"
    return out


def _hunyuan_vl(chat: Chat, add_ass: bool) -> str:
    out = "<｜hy_begin▁of▁sentence｜>"
    for i, (role, content) in enumerate(chat):
        if i == 0 and role == "system":
            out += f"{content}<｜hy_place▁holder▁no▁3｜>"
        elif role == "user":
            out += f"{content}<｜hy_User｜>"
        elif role == "assistant":
            out += f"{content}<｜hy_Assistant｜>"
    return out


_KIMI_K2_HEADERS = {
    "system": "<|im_system|>system<|im_middle|>",
    "user": "<|im_user|>user<|im_middle|>",
    "assistant": "<|im_assistant|>assistant<|im_middle|>",
    "tool": "<|im_system|>tool<|im_middle|>",
}


def _kimi_k2(chat: Chat, add_ass: bool) -> str:
    out = "".join(f"{_KIMI_K2_HEADERS.get(role, '')}{content}<|im_end|>" for role, content in chat)
    return out + (_KIMI_K2_HEADERS["assistant"] if add_ass else "")


def _seed_oss(chat: Chat, add_ass: bool) -> str:
    out = "".join(
        f"<seed:bos>{role}\n{_trim(content) if role == 'assistant' else content}<seed:eos>" for role, content in chat
    )
    return out + ("<seed:bos>assistant\n" if add_ass else "")


def _grok2(chat: Chat, add_ass: bool) -> str:
    out = ""
    for role, content in chat:
        if role == "system":
            out += f"System: {_trim(content)}<|separator|>\n\n"
        elif role == "user":
            out += f"Human: {_trim(content)}<|separator|>\n\n"
        elif role == "assistant":
            out += f"Assistant: {content}<|separator|>\n\n"
    return out + ("Assistant:" if add_ass else "")


_PANGU_ROLES = {"system": "系统", "user": "用户", "assistant": "助手", "tool": "工具", "function": "方法"}


def _pangu_embedded(chat: Chat, add_ass: bool) -> str:
    out = ""
    for i, (role, content) in enumerate(chat):
        if i == 0 and role != "system":
            out += "[unused9]系统：[unused10]"
        if role in _PANGU_ROLES:
            out += f"[unused9]{_PANGU_ROLES[role]}：{content}[unused10]"
    return out + ("[unused9]助手：" if add_ass else "")


_TEMPLATES: dict[str, Formatter] = {
    "chatml": _chatml,
    "llama2": partial(_llama2, system=False, bos_in_history=False, strip=False),
    "llama2-sys": partial(_llama2, system=True, bos_in_history=False, strip=False),
    "llama2-sys-bos": partial(_llama2, system=True, bos_in_history=True, strip=False),
    "llama2-sys-strip": partial(_llama2, system=True, bos_in_history=False, strip=True),
    "mistral-v1": partial(_mistral_v1_v3, leading=" ", trailing=" ", trim_assistant=False),
    "mistral-v3": partial(_mistral_v1_v3, leading="", trailing=" ", trim_assistant=True),
    "mistral-v3-tekken": partial(_mistral_v1_v3, leading="", trailing="", trim_assistant=False),
    "mistral-v7": partial(_mistral_v7, space=" "),
    "mistral-v7-tekken": partial(_mistral_v7, space=""),
    "phi3": partial(_role_tagged, head="<|", sep="|>\n", end="<|end|>\n", prompt="<|assistant|>\n"),
    "phi4": partial(
        _role_tagged, head="<|im_start|>", sep="<|im_sep|>", end="<|im_end|>", prompt="<|im_start|>assistant<|im_sep|>"
    ),
    "falcon3": partial(_role_tagged, head="<|", sep="|>\n", end="\n", prompt="<|assistant|>\n"),
    "zephyr": partial(_role_tagged, head="<|", sep="|>\n", end="<|endoftext|>\n", prompt="<|assistant|>\n"),
    "monarch": _monarch,
    "gemma": _gemma,
    "orion": _orion,
    "openchat": _openchat,
    "vicuna": partial(_vicuna, orca=False),
    "vicuna-orca": partial(_vicuna, orca=True),
    "deepseek": partial(
        _by_role,
        formats={"system": "{}", "user": "### Instruction:\n{}\n", "assistant": "### Response:\n{}\n<|EOT|>\n"},
        prompt="### Response:\n",
    ),
    "deepseek2": partial(
        _by_role,
        formats={"system": "{}\n\n", "user": "User: {}\n\n", "assistant": "Assistant: {}<｜end▁of▁sentence｜>"},
        prompt="Assistant:",
    ),
    "deepseek3": partial(
        _by_role,
        formats={"system": "{}\n\n", "user": "<｜User｜>{}", "assistant": "<｜Assistant｜>{}<｜end▁of▁sentence｜>"},
        prompt="<｜Assistant｜>",
    ),
    "deepseek-ocr": lambda chat, add_ass: "".join(content for _, content in chat),
    "command-r": partial(
        _by_role,
        formats={
            "system": "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{}<|END_OF_TURN_TOKEN|>",
            "user": "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{}<|END_OF_TURN_TOKEN|>",
            "assistant": "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>{}<|END_OF_TURN_TOKEN|>",
        },
        prompt="<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
        trim=True,
    ),
    "llama3": partial(
        _role_tagged,
        head="<|start_header_id|>",
        sep="<|end_header_id|>\n\n",
        end="<|eot_id|>",
        prompt="<|start_header_id|>assistant<|end_header_id|>\n\n",
        trim=True,
    ),
    "chatglm3": partial(_chatglm, prefix="[gMASK]sop", sep="\n ", prompt="<|assistant|>"),
    "chatglm4": partial(_chatglm, prefix="[gMASK]<sop>", sep="\n", prompt="<|assistant|>\n"),
    "glmedge": partial(_chatglm, prefix="", sep="\n", prompt="<|assistant|>"),
    "minicpm": _minicpm,
    "exaone3": partial(
        _by_role,
        formats={
            "system": "[|system|]{}[|endofturn|]\n",
            "user": "[|user|]{}\n",
            "assistant": "[|assistant|]{}[|endofturn|]\n",
        },
        prompt="[|assistant|]",
        trim=True,
    ),
    "exaone4": partial(
        _by_role,
        formats={
            "system": "[|system|]{}[|endofturn|]\n",
            "user": "[|user|]{}\n",
            "assistant": "[|assistant|]{}[|endofturn|]\n",
            "tool": "[|tool|]{}[|endofturn|]\n",
        },
        prompt="[|assistant|]",
        trim=True,
    ),
    "exaone-moe": partial(
        _by_role,
        formats={role: f"<|{role}|>\n{{}}<|endofturn|>\n" for role in ("system", "user", "assistant", "tool")},
        prompt="<|assistant|>\n",
        trim=True,
    ),
    "rwkv-world": _rwkv_world,
    "granite": partial(_granite, tool_call_as_assistant=False),
    "granite-4.0": partial(_granite, tool_call_as_assistant=True),
    "granite-4.1": partial(_granite, tool_call_as_assistant=True),
    "gigachat": _gigachat,
    "megrez": partial(
        _role_tagged,
        head="<|role_start|>",
        sep="<|role_end|>",
        end="<|turn_end|>",
        prompt="<|role_start|>assistant<|role_end|>",
    ),
    "yandex": partial(
        _by_role,
        formats={"user": " Пользователь: {}\n\n", "assistant": " Ассистент: {}\n\n"},
        prompt=" Ассистент:[SEP]",
    ),
    "bailing": partial(_bailing, think=False),
    "bailing-think": partial(_bailing, think=True),
    "bailing2": _bailing2,
    "llama4": partial(
        _role_tagged,
        head="<|header_start|>",
        sep="<|header_end|>\n\n",
        end="<|eot|>",
        prompt="<|header_start|>assistant<|header_end|>\n\n",
        trim=True,
    ),
    "smolvlm": _smolvlm,
    "dots1": _dots1,
    "hunyuan-moe": _hunyuan_moe,
    "gpt-oss": _gpt_oss,
    "hunyuan-dense": _hunyuan_dense,
    "hunyuan-vl": _hunyuan_vl,
    "kimi-k2": _kimi_k2,
    "seed_oss": _seed_oss,
    "grok-2": _grok2,
    "pangu-embedded": _pangu_embedded,
    "solar-open": partial(
        _role_tagged, head="<|begin|>", sep="<|content|>", end="<|end|>", prompt="<|begin|>assistant"
    ),
}

# llama.cpp detects "dots1" but, like upstream, offers no name for it on the command line.
_NAMED = sorted(name for name in _TEMPLATES if name != "dots1")


def builtin_template_names() -> list[str]:
    """The names ``--chat-template`` accepts, sorted as ``llama_chat_builtin_templates`` lists them."""
    return list(_NAMED)


def is_builtin_template(name: str) -> bool:
    """Whether ``name`` is a built-in: one of the names, or one only detection yields (``dots1``)."""
    return name in _TEMPLATES


def format_builtin(name: str, chat: Chat, add_generation_prompt: bool) -> str:
    """Render ``(role, text)`` pairs with the built-in template ``name``."""
    return _TEMPLATES[name](chat, add_generation_prompt)


def detect_builtin_template(source: str) -> str | None:
    """The built-in llama.cpp would use for a jinja template (``llm_chat_detect_template``), or None.

    A built-in's own name maps to itself; otherwise marker strings in the template's text decide.
    """
    if source in _NAMED:
        return source

    def has(*needles: str) -> bool:
        return all(needle in source for needle in needles)

    if has("<|im_start|>"):
        if has("<|im_sep|>"):
            return "phi4"
        return "smolvlm" if has("<end_of_utterance>") else "chatml"
    if source.startswith("mistral") or has("[INST]"):
        if has("[SYSTEM_PROMPT]"):
            return "mistral-v7"
        if has("' [INST] ' + system_message") or has("[AVAILABLE_TOOLS]"):
            if has(" [INST]"):
                return "mistral-v1"
            return "mistral-v3-tekken" if has('"[INST]"') else "mistral-v3"
        if has("content.strip()"):
            return "llama2-sys-strip"
        if has("bos_token + '[INST]"):
            return "llama2-sys-bos"
        return "llama2-sys" if has("<<SYS>>") else "llama2"
    if has("<|assistant|>", "<|end|>"):
        return "phi3"
    if has("[gMASK]<sop>"):
        return "chatglm4"
    if has("<|assistant|>", "<|user|>"):
        if has("<|tool_declare|>"):
            return "exaone-moe"
        return "falcon3" if has("</s>") else "glmedge"
    if has("<|{{ item['role'] }}|>", "<|begin_of_image|>"):
        return "glmedge"
    if has("<|user|>", "<|endoftext|>"):
        return "zephyr"
    if has("bos_token + message['role']"):
        return "monarch"
    if has("<start_of_turn>"):
        return "gemma"
    if has("'\\n\\nAssistant: ' + eos_token"):
        return "orion"
    if has("GPT4 Correct "):
        return "openchat"
    if has("USER: ", "ASSISTANT: "):
        return "vicuna-orca" if has("SYSTEM: ") else "vicuna"
    if has("### Instruction:", "<|EOT|>"):
        return "deepseek"
    if has("<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>"):
        return "command-r"
    if has("<|start_header_id|>", "<|end_header_id|>"):
        return "llama3"
    if has("[gMASK]sop"):
        return "chatglm3"
    if has("<用户>"):
        return "minicpm"
    if has("'Assistant: ' + message['content'] + eos_token"):
        return "deepseek2"
    if has("<｜Assistant｜>", "<｜User｜>", "<｜end▁of▁sentence｜>"):
        return "deepseek3"
    if has("[|system|]", "[|assistant|]", "[|endofturn|]"):
        return "exaone4" if has("[|tool|]") else "exaone3"
    if has("rwkv-world") or has("{{- 'User: ' + message['content']|trim + '\\n\\n' -}}"):
        return "rwkv-world"
    if has("<|start_of_role|>"):
        if has("<tool_call>") or has("<tools>"):
            return "granite-4.0" if has("g4_default_system_message") else "granite-4.1"
        return "granite"
    if has("message['role'] + additional_special_tokens[0] + message['content'] + " "additional_special_tokens[1]"):
        return "gigachat"
    if has("<|role_start|>"):
        return "megrez"
    if has(" Ассистент:"):
        return "yandex"
    if has("<role>ASSISTANT</role>", "'HUMAN'"):
        return "bailing"
    if has("<role>ASSISTANT</role>", '"HUMAN"', "<think>"):
        return "bailing-think"
    if has("<role>ASSISTANT</role>", "<role>HUMAN</role>", "<|role_end|>"):
        return "bailing2"
    if has("<|header_start|>", "<|header_end|>"):
        return "llama4"
    if has("<|endofuserprompt|>"):
        return "dots1"
    if has("<|extra_0|>", "<|extra_4|>"):
        return "hunyuan-moe"
    if has("<|start|>", "<|channel|>"):
        return "gpt-oss"
    if has("<｜hy_Assistant｜>", "<｜hy_begin▁of▁sentence｜>"):
        return "hunyuan-vl"
    if has("<｜hy_Assistant｜>", "<｜hy_place▁holder▁no▁3｜>"):
        return "hunyuan-dense"
    if has("<|im_assistant|>assistant<|im_middle|>"):
        return "kimi-k2"
    if has("<seed:bos>"):
        return "seed_oss"
    if has("'Assistant: '  + message['content'] + '<|separator|>"):
        return "grok-2"
    if has("[unused9]系统：[unused10]"):
        return "pangu-embedded"
    if has("<|begin|>", "<|content|>", "<|end|>"):
        return "solar-open"
    return None
