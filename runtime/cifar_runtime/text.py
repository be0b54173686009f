"""Untrusted text (file names, model metadata, error messages) made safe to print on a terminal.

A file name or a class name can hold an escape sequence (colours, clear screen, window title, clipboard), a newline
that forges an output row, or a bidi control that reorders what is shown. Everything written for a person goes
through `terminal_safe`, which shows such characters as escapes, the way `ls -b` shows odd names. Machine formats
(json, jsonl, csv) never do: they keep exact strings, and their own quoting already makes them safe.
A backslash is left as it is, so an undecodable byte reads `\\xe9` here exactly as it does in jsonl and csv.
"""

from __future__ import annotations

import re

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0 controls, DEL and C1 controls; Unicode line/paragraph separators; bidi embeddings, overrides, isolates and
# marks; and lone surrogates (os.fsdecode turns each undecodable byte of a file name into U+DC80..U+DCFF).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


def terminal_safe(text: str) -> str:
    """`text` with every control character, separator, bidi control and undecodable byte escaped (\\x1b, \\n)."""
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # the original byte, as `display_path` shows it in jsonl/csv
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
