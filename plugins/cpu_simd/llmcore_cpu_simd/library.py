"""The compiled library, opened through cffi in ABI mode. Its declarations are not copied here:
cffi reads them from the C headers, the blocks between ``/* cffi-cdef: begin */`` and
``/* cffi-cdef: end */``, so the Python side and the C build see one text."""

from __future__ import annotations

import functools
import re

from cffi import FFI

from llmcore_cpu_simd.build import SOURCE_DIR, build

#: the headers that declare the library's interface, in the order cffi must read them
#: (lc_graph.h and lc_mm_packed.h use lc_types.h's types)
INTERFACE_HEADERS = ("lc_types.h", "lc_graph.h", "lc_mm_packed.h")
_CDEF_BLOCK = re.compile(r"/\* cffi-cdef: begin \*/(.*?)/\* cffi-cdef: end \*/", re.DOTALL)


def header_declarations() -> str:
    """The cdef: the marked blocks of :data:`INTERFACE_HEADERS`, in order."""
    blocks = []
    for name in INTERFACE_HEADERS:
        found = _CDEF_BLOCK.findall((SOURCE_DIR / name).read_text())
        if not found:
            raise RuntimeError(f"cpu_simd: csrc/{name} has no cffi-cdef block")
        blocks.extend(found)
    return "\n".join(blocks)


ffi = FFI()
ffi.cdef(header_declarations())


@functools.cache
def load(level: str):
    """The library built for ISA ``level`` (compiled on first use), as a cffi lib object."""
    return ffi.dlopen(str(build(level)))
