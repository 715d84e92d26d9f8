"""Laws as registered entries (base.LAWS) and the one solver and bootstrap that fit any of them."""

from ...sweep.types import LawName, Method
from . import chinchilla, data_constrained, farseer, kaplan, power, power_c, sigmoid  # noqa: F401  (registers the entries)
from .base import LAWS, Fitted, Law, Loss, Param, Space, from_record

LOSS_LAWS = tuple(name for name in LawName if name is not LawName.AUTO)
"""The law families fit.law chooses among (each registered under its name)."""
__all__ = ["LAWS", "LOSS_LAWS", "Fitted", "Law", "Loss", "Method", "Param", "Space", "from_record"]
