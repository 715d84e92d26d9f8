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

    def token_bytes(self, i: int) -> bytes:
        """The bytes of one id, for output as it comes (a character may span several ids)."""
        if self.tokenizer is None:
            return bytes([i])
        token = self.tokenizer.id_to_token(i) or ""  # None: an id beyond the vocabulary (padding rows)
        return b"\x00" if token == EOT else bytes(_BYTE_OF[c] for c in token)  # ByteLevel: one stand-in a byte

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        if self.tokenizer is None:
            return bytes(np.asarray(ids, dtype=np.uint8)).decode("utf-8", errors="replace")
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False).replace(EOT, "\x00")


def byte_unicode() -> list[str]:
    """GPT-2's printable stand-in for each byte (the ByteLevel pre-tokenizer's alphabet), by byte."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = iter(range(256, 512))
    return [chr(b) if b in kept else chr(next(shifted)) for b in range(256)]


_BYTE_OF = {c: b for b, c in enumerate(byte_unicode())}


def open_codec(folder: Path, tokenizer: TokenizerKind) -> Codec:
    """The codec of the corpus prepared in `folder` (data.corpus.prepare)."""
    if tokenizer == TokenizerKind.BYTE:
        return Codec()
    from tokenizers import Tokenizer  # noqa: PLC0415  (only BPE corpora need it)

    return Codec(Tokenizer.from_file(str(Path(folder) / "tokenizer.json")))
