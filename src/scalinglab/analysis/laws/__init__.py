"""Laws as registered entries (base.LAWS) and the one solver and bootstrap that fit any of them."""

from ...sweep.types import Method
from . import chinchilla, power, sigmoid  # noqa: F401  (registers the entries)
from .base import LAWS, Fitted, Law, Loss, Param, Space, from_record

__all__ = ["LAWS", "Fitted", "Law", "Loss", "Method", "Param", "Space", "from_record"]
