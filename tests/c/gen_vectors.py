#!/usr/bin/env python3
"""Turns tests/vectors/vectors.json into a C table for tests/c/test_c.c.

Each vector becomes its encoded bytes, its side-table buffers, its port count, and a
function that builds the expected value with the cm_value_* builder API, so the C test
checks the decoder (decode, then compare with the expected tree) and the encoder (encode
the expected tree, then compare with the bytes). The invalid vectors beside it
(invalid.json) become a second table: bytes, side table, port count and the text the
decoder's error must contain (the kind as the core words it).

Usage: gen_vectors.py <vectors.json> <out.h>
"""

import json
import sys
from pathlib import Path

VIEW_KINDS = {
    "Int8Array": 0, "Uint8Array": 1, "Uint8ClampedArray": 2, "Int16Array": 3,
    "Uint16Array": 4, "Int32Array": 5, "Uint32Array": 6, "Float16Array": 7,
    "Float32Array": 8, "Float64Array": 9, "BigInt64Array": 10, "BigUint64Array": 11,
    "DataView": 12,
}
ERROR_NAMES = {
    "Error": 0, "EvalError": 1, "RangeError": 2, "ReferenceError": 3, "SyntaxError": 4,
    "TypeError": 5, "URIError": 6,
}


def c_bytes(data: bytes) -> str:
    """A C string literal of exactly these bytes (octal escapes never run on)."""
    return '"' + "".join(f"\\{b:03o}" for b in data) + '"'


def text(s: str) -> str:
    b = s.encode("utf-8")
    return f"{c_bytes(b)}, {len(b)}"


def expr(v) -> str:
    (kind, x), = v.items()
    if kind == "undefined":
        return "cm_value_new_undefined()"
    if kind == "null":
        return "cm_value_new_null()"
    if kind == "bool":
        return f"cm_value_new_bool({'true' if x else 'false'})"
    if kind == "int":
        return f"cm_value_new_int(i64_from_bits(UINT64_C({int(x) & (2**64 - 1)})))"
    if kind == "float":
        return f"cm_value_new_float(f64_from_bits(UINT64_C(0x{x})))"
    if kind == "date":
        return f"cm_value_new_date(f64_from_bits(UINT64_C(0x{x})))"
    if kind == "bigint":
        mag = bytes.fromhex(x["magnitude"])
        return f"cm_value_new_bigint({'true' if x['negative'] else 'false'}, (const uint8_t *){c_bytes(mag)}, {len(mag)})"
    if kind == "string":
        return f"cm_value_new_string({text(x)})"
    if kind == "utf16":
        if not x:
            return "cm_value_new_utf16(NULL, 0)"
        units = ", ".join(str(u) for u in x)
        return f"cm_value_new_utf16((const uint16_t[]){{{units}}}, {len(x)})"
    if kind == "boxed":
        return f"cm_value_new_boxed({expr(x)})"
    if kind == "buffer":
        b = bytes.fromhex(x)
        return f"cm_value_new_buffer((const uint8_t *){c_bytes(b)}, {len(b)})"
    if kind == "view":
        return (f"cm_value_new_view({VIEW_KINDS[x['kind']]}, {x['byte_offset']}, {x['length']}, "
                f"{expr(x['buffer'])})")
    if kind == "array":
        return f"build_array({len(x)}{''.join(', ' + expr(i) for i in x)})"
    if kind == "hole":
        return "cm_value_new_hole()"
    if kind == "object":
        parts = "".join(f", {c_bytes(k.encode())}, (size_t){len(k.encode())}, {expr(val)}" for k, val in x)
        return f"build_object({len(x)}{parts})"
    if kind == "map":
        parts = "".join(f", {expr(k)}, {expr(val)}" for k, val in x)
        return f"build_map({len(x)}{parts})"
    if kind == "set":
        return f"build_set({len(x)}{''.join(', ' + expr(i) for i in x)})"
    if kind == "regexp":
        return f"cm_value_new_regexp({text(x['source'])}, {text(x['flags'])})"
    if kind == "error":
        msg = text(x["message"]) if "message" in x else "NULL, 0"
        stack = text(x["stack"]) if "stack" in x else "NULL, 0"
        cause = expr(x["cause"]) if "cause" in x else "NULL"
        return f"cm_value_new_error({ERROR_NAMES[x['name']]}, {msg}, {stack}, {cause})"
    if kind == "shared":
        return f"cm_value_new_shared({expr(x)})"
    if kind == "ref":
        return f"cm_value_new_ref({x})"
    if kind == "port":
        return f"cm_value_new_port({x})"
    raise SystemExit(f"unknown value kind {kind!r}")


def side_table(prefix: str, name: str, bufs: list, out: list) -> tuple:
    """Emits a vector's side-table buffers into `out`; returns the C expressions for its
    buffer and length arrays (NULL and NULL without buffers)."""
    for i, b in enumerate(bufs):
        out.append(f"static const uint8_t {prefix}buf_{name}_{i}[] = {{{', '.join(str(x) for x in b) or '0'}}};")
    if not bufs:
        return "NULL", "NULL"
    out.append(f"static const uint8_t *{prefix}bufs_{name}[] = {{{', '.join(f'{prefix}buf_{name}_{i}' for i in range(len(bufs)))}}};")
    out.append(f"static const size_t {prefix}buflens_{name}[] = {{{', '.join(str(len(b)) for b in bufs)}}};")
    return f"{prefix}bufs_{name}", f"{prefix}buflens_{name}"


def invalid_table(path: Path) -> list:
    out = []
    rows = []
    for v in json.loads(path.read_text())["invalid"]:
        name = v["name"]
        data = bytes.fromhex(v["hex"])
        bufs = [bytes.fromhex(b) for b in v["buffers"]]
        table, lens = side_table("i", name, bufs, out)
        rows.append(
            f"  {{{{\"{name}\", (const uint8_t *){c_bytes(data)}, {len(data)}, "
            f"{table}, {lens}, {len(bufs)}, {v['ports']}}}, {c_bytes(v['text'].encode())}}},"
        )
    out.append("")
    out.append("static const struct invalid_vector INVALID[] = {")
    out.extend(rows)
    out.append("};")
    out.append(f"#define INVALID_COUNT {len(rows)}")
    return out


def main() -> None:
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    doc = json.loads(src.read_text())
    out = ["/* Generated by tests/c/gen_vectors.py from tests/vectors/vectors.json and",
           " * tests/vectors/invalid.json. */", ""]
    table = []
    for v in doc["vectors"]:
        name = v["name"]
        data = bytes.fromhex(v["hex"])
        assert data == (src.parent / v["file"]).read_bytes(), f"{name}: hex and file differ"
        bufs = [(src.parent / f).read_bytes() for f in v["buffers"]]
        out.append(f"static cm_value *expected_{name}(void) {{ return {expr(v['value'])}; }}")
        buffers, lens = side_table("", name, bufs, out)
        table.append(
            f"  {{{{\"{name}\", (const uint8_t *){c_bytes(data)}, {len(data)}, "
            f"{buffers}, {lens}, {len(bufs)}, {v['ports']}}}, expected_{name}}},"
        )
    out.append("")
    out.append("static const struct vector VECTORS[] = {")
    out.extend(table)
    out.append("};")
    out.append(f"#define VECTOR_COUNT {len(table)}")
    out.append("")
    out.extend(invalid_table(src.parent / "invalid.json"))
    dst.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
