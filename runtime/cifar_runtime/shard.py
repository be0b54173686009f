"""--shard K/N: a deterministic 1/N of the inputs, so N processes or machines split one job, no file twice.

A file belongs to shard `int.from_bytes(sha256(key).digest()[:8], "big") % N`, counted from 0, where `key` is
its path relative to the folder argument it was found under, with "/" separators (`cat/0001.jpg` for
`photos/cat/0001.jpg` found under `photos/`), or the path exactly as given for a file named on the command line
or on stdin; the key's bytes are the file system's (os.fsencode). Listing order, the machine and where the
folder is mounted do not change the split; giving the shards different arguments does.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from cifar_runtime.errors import UsageError

_FORM = re.compile(r"(\d+)/(\d+)")


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`, index counted from 0."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'K/N' with 0 <= K < N; UsageError otherwise."""
        match = _FORM.fullmatch(text.strip())
        if not match or not 0 <= int(match[1]) < int(match[2]):
            raise UsageError(f"--shard must be K/N with 0 <= K < N (K counts from 0), got {text!r}")
        return cls(int(match[1]), int(match[2]))

    def takes(self, key: str) -> bool:
        """True when the input with this key (see the module docstring) belongs to this shard."""
        digest = hashlib.sha256(os.fsencode(key)).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
