"""Text to a corpus's token ids and back, for the task prompts a run is scored on: UTF-8 bytes for
the byte tokenizer, the corpus's own BPE (its tokenizer.json) otherwise. Documents are separated by
NUL in decoded text, whichever the tokenizer (BPE's <|endoftext|> becomes NUL)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .corpus import EOT, TokenizerKind

if TYPE_CHECKING:
    from tokenizers import Tokenizer


@dataclass(frozen=True)
class Codec:
    tokenizer: Tokenizer | None = None
    """A tokenizers.Tokenizer for BPE; None for bytes."""

    def encode(self, text: str) -> list[int]:
        if self.tokenizer is None:
            return list(text.encode("utf-8"))
        return self.tokenizer.encode(text).ids

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        if self.tokenizer is None:
            return bytes(np.asarray(ids, dtype=np.uint8)).decode("utf-8", errors="replace")
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False).replace(EOT, "\x00")


def open_codec(folder: Path, tokenizer: TokenizerKind) -> Codec:
    """The codec of the corpus prepared in `folder` (data.corpus.prepare)."""
    if tokenizer == TokenizerKind.BYTE:
        return Codec()
    from tokenizers import Tokenizer  # noqa: PLC0415  (only BPE corpora need it)

    return Codec(Tokenizer.from_file(str(Path(folder) / "tokenizer.json")))
