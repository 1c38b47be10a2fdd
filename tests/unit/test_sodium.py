"""Loading libsodium leaves nothing behind in the temporary folder."""

from __future__ import annotations

import sys
from pathlib import Path


class TestLibsodiumLoading:
    def test_the_bundled_library_file_is_removed_once_loaded(self) -> None:
        """rbcl's temporary copy of libsodium is deleted after loading; calls still work."""
        from kruispunt import sodium, wire

        assert not Path(sys.modules["rbcl._sodium"].lib_path).exists()
        assert sodium.libsodium is not None
        assert wire.POINT_BYTES == 32
