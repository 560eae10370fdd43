"""``llmcore gguf-info FILE``: print a GGUF file's metadata and tensor table.

The text layout follows gguf-py's ``gguf_dump.py`` line for line (including its three ``GGUF.*``
header pseudo-keys), so output can be compared with the reference tool; long strings and arrays
are abbreviated. ``--json`` prints one JSON document instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmcore.gguf import GGUFReader

_STRING_PREVIEW = 60
_ARRAY_PREVIEW = 6


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gguf-info",
        help="show a GGUF file's metadata and tensors",
        description="Show a GGUF file's metadata and tensors (like gguf-py's gguf_dump.py).",
    )
    parser.add_argument("model", metavar="FILE", help="GGUF file (the first file of a split model)")
    parser.add_argument("--no-tensors", action="store_true", help="omit the tensor table")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--json-array", action="store_true", help="include full array values in the JSON output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmcore.gguf import GGUFReader

    with GGUFReader(args.model) as reader:
        if args.json:
            json.dump(_as_json(reader, args), sys.stdout)
            print()
        else:
            _print_text(reader, args)
    return 0


def _plain(value: Any) -> Any:
    """A metadata value as plain Python (numpy arrays to lists, recursively)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _is_array(value: Any) -> bool:
    return isinstance(value, list) or hasattr(value, "shape")


def _preview(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= _STRING_PREVIEW else value[: _STRING_PREVIEW - 3] + "...")
    if _is_array(value):
        text = repr(_plain(value[:_ARRAY_PREVIEW]))
        return text[:-1] + ", ...]" if len(value) > _ARRAY_PREVIEW else text
    return str(value)


def _print_text(reader: GGUFReader, args: argparse.Namespace) -> None:
    print(f"* {reader.path}: GGUF version {reader.version}, alignment {reader.alignment}")
    if len(reader.part_paths) > 1:
        print(f"* Split model of {len(reader.part_paths)} files: {', '.join(reader.part_paths)}")
    first_part_tensors = sum(1 for info in reader.tensors.values() if info.part == 0)
    rows = [
        ("UINT32", 1, "GGUF.version", str(reader.version)),
        ("UINT64", 1, "GGUF.tensor_count", str(first_part_tensors)),
        ("UINT64", 1, "GGUF.kv_count", str(len(reader.metadata))),
    ]
    for key, value in reader.metadata.items():
        vtype = reader.metadata_types[key].name
        if _is_array(value):
            rows.append((f"[{vtype}]", len(value), key, _preview(value)))
        else:
            rows.append((vtype, 1, key, _preview(value)))
    print(f"* Dumping {len(rows)} key/value pair(s)")
    for n, (label, count, key, shown) in enumerate(rows, 1):
        print(f"  {n:5}: {label:10} | {count:8} | {key} = {shown}")
    if args.no_tensors:
        return
    print(f"* Dumping {len(reader.tensors)} tensor(s)")
    for n, info in enumerate(reader.tensors.values(), 1):
        ne = list(info.ne) + [1] * (4 - len(info.ne))
        dims = ", ".join(f"{d:5}" for d in ne)
        print(f"  {n:5}: {info.n_elements:10} | {dims} | {info.type.name:7} | {info.name}")


def _as_json(reader: GGUFReader, args: argparse.Namespace) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for index, (key, value) in enumerate(reader.metadata.items()):
        vtype = reader.metadata_types[key]
        is_array = _is_array(value)
        entry: dict[str, Any] = {"index": index, "type": "ARRAY" if is_array else vtype.name}
        if is_array:
            entry["array_type"] = vtype.name
            entry["count"] = len(value)
        if not is_array or args.json_array:
            entry["value"] = _plain(value)
        metadata[key] = entry
    result: dict[str, Any] = {
        "filename": reader.path,
        "parts": reader.part_paths,
        "version": reader.version,
        "alignment": reader.alignment,
        "metadata": metadata,
    }
    if not args.no_tensors:
        result["tensors"] = {
            info.name: {
                "index": index,
                "shape": list(info.ne),
                "type": info.type.name,
                "n_elements": info.n_elements,
                "n_bytes": info.n_bytes,
                "offset": info.offset,
                "part": info.part,
            }
            for index, info in enumerate(reader.tensors.values())
        }
    return result
