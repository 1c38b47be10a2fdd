"""libsodium as bundled by rbcl, loaded once for the modules that call it directly.

rbcl writes its bundled libsodium to a temporary file at import and never removes
it: one 2.8 MB file in $TMPDIR for every process. Once the library is loaded the
file is not needed, so it is removed here.
"""

from __future__ import annotations

import contextlib
import os
import sys

from rbcl import _sodium as libsodium

__all__ = ["libsodium"]

with contextlib.suppress(KeyError, AttributeError, OSError):
    os.unlink(sys.modules["rbcl._sodium"].lib_path)
