"""The GPU kernels, written once in a small C dialect (``kernels/``), rendered for each GPU
language by putting that language's prelude (``preludes/``) in front, tinygrad's way (CUDA's and
HIP's begin with what the two spell alike, ``cuda_hip.h``).

The dialect is C99 with a few words a prelude defines: ``KERNEL``, ``GLOBAL`` (device memory),
``PRIVATE`` (a work-item's own memory, for pointers to locals), ``DEVICE`` (a helper function),
``SHARED`` and ``BARRIER()`` (workgroup memory and its barrier; ``SHARED_PTR`` for a pointer
parameter into it), ``GROUP_ID(d)`` (d = 0, 1) and
``LOCAL_ID(0)``, the types ``u8 i8 u16 u32 i32 acc_t``, ``F32_BITS``/``BITS_F32``,
``f16_to_f32``/``f32_to_f16`` and C's float math names. Every workgroup has ``WG`` (64)
work-items along x. A kernel whose source is preceded by ``// for T in a b c`` is instantiated once
per name, ``{T}`` replaced by it. Kernel parameters are device buffers (``GLOBAL [const] type*``)
or scalars (``u32``, ``i32``, ``float``), which is what a host needs to know to launch one
(:class:`KernelSignature`). Only Metal needs more than the prelude: its kernel parameters carry
``[[buffer(i)]]`` indices and the thread positions are parameters, so its signatures are rewritten.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

KERNEL_DIR = Path(__file__).parent / "kernels"
PRELUDE_DIR = Path(__file__).parent / "preludes"
#: the kernel files, in the order they are concatenated (common.h first: the others use it)
SOURCES = ("common.h", "elementwise.c", "norm.c", "rope.c", "get_rows.c", "mul_mat.c", "attention.c")
#: CUDA C++ for NVRTC (CuPy RawModule), HIP C++ for hiprtc (CuPy's ROCm build), OpenCL C 1.2
#: (pyopencl: SYCL/OpenCL devices, PoCL), Metal Shading Language (pyobjc's Metal): each one's
#: prelude files, in order
PRELUDES = {
    "cuda": ("cuda_hip.h", "cuda.h"), "hip": ("cuda_hip.h", "hip.h"), "opencl": ("opencl.h",), "metal": ("metal.h",),
}
DIALECTS = tuple(PRELUDES)
#: work-items per workgroup, every kernel (common.h's WG)
WORKGROUP = 64

_TEMPLATE = re.compile(r"^// for T in (?P<names>[\w ]+)\n(?P<body>.*?^\}\n)", re.MULTILINE | re.DOTALL)
_KERNEL = re.compile(r"^KERNEL void (?P<name>\w+)\((?P<params>[^)]*)\) \{", re.MULTILINE)
_BUFFER = re.compile(r"GLOBAL (?P<const>const )?(?P<type>\w+)\* (?P<name>\w+)")
_SCALAR = re.compile(r"(?P<type>u32|i32|float) (?P<name>\w+)")


@dataclass(frozen=True)
class Param:
    """One kernel parameter: a device buffer (``kind`` "buffer", ``type`` its element type) or a
    scalar (``kind`` "u32", "i32" or "float")."""

    name: str
    kind: str
    type: str
    const: bool = False


@dataclass(frozen=True)
class KernelSignature:
    name: str
    params: tuple[Param, ...]


@dataclass(frozen=True)
class Rendering:
    """Every kernel in one program of one dialect."""

    dialect: str
    source: str
    kernels: dict[str, KernelSignature]


@functools.cache
def kernel_source() -> str:
    """The kernels in the dialect, templates instantiated, without a prelude."""
    text = "\n".join((KERNEL_DIR / name).read_text() for name in SOURCES)
    return _TEMPLATE.sub(lambda m: "\n".join(m["body"].replace("{T}", name) for name in m["names"].split()), text)


@functools.cache
def signatures() -> dict[str, KernelSignature]:
    """Each kernel's parameters, by kernel name."""
    return {m["name"]: KernelSignature(m["name"], tuple(_param(p) for p in m["params"].split(",")))
            for m in _KERNEL.finditer(kernel_source())}


def _param(text: str) -> Param:
    text = " ".join(text.split())
    if buffer := _BUFFER.fullmatch(text):
        return Param(buffer["name"], "buffer", buffer["type"], bool(buffer["const"]))
    if scalar := _SCALAR.fullmatch(text):
        return Param(scalar["name"], scalar["type"], scalar["type"])
    raise ValueError(f"kernel parameter {text!r} is neither 'GLOBAL [const] type* name' nor a u32/i32/float scalar")


@functools.cache
def render(dialect: str) -> Rendering:
    """The whole program in ``dialect`` (one of :data:`DIALECTS`)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}: one of {', '.join(DIALECTS)}")
    body = kernel_source()
    if dialect == "metal":
        body = _KERNEL.sub(_metal_signature, body)
    prelude = "".join((PRELUDE_DIR / name).read_text() for name in PRELUDES[dialect])
    return Rendering(dialect, f"{prelude}\n{body}", signatures())


def _metal_signature(match: re.Match) -> str:
    sig = signatures()[match["name"]]
    params = []
    for i, p in enumerate(sig.params):
        if p.kind == "buffer":
            params.append(f"device {'const ' if p.const else ''}{p.type}* {p.name} [[buffer({i})]]")
        else:
            params.append(f"constant {p.type}& {p.name} [[buffer({i})]]")
    params += ["uint3 _group_id [[threadgroup_position_in_grid]]", "uint3 _local_id [[thread_position_in_threadgroup]]"]
    return f"kernel void {sig.name}({', '.join(params)}) {{"
