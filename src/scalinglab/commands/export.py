"""`scalinglab export RUN_DIR --format hf --out DIR`: a finished run as a transformers folder."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ..interop.hf import export_hf


def main(args, console: Console) -> int:
    out = export_hf(args.run, Path(args.out))
    console.print(escape(f"wrote {out}: AutoModelForCausalLM.from_pretrained({str(out)!r}) and AutoTokenizer load it"))
    return 0
