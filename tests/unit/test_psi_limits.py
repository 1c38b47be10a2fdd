"""openmined-psi's limits (kruispunt.psi_limits) hold against the library's real messages."""

from __future__ import annotations

import private_set_intersection.python as psi
import pytest

from benchmarks.psi_baseline import openmined_fpr
from coordinator.modes import bilateral
from kruispunt import psi_limits
from kruispunt.errors import ResourceLimit, RoundFailed
from kruispunt.purpose import Bilateral
from kruispunt.transport import MAX_MESSAGE_BYTES

STRUCTURES = {"gcs": psi.DataStructure.GCS, "raw": psi.DataStructure.RAW}


def items(prefix: str, n: int) -> list[bytes]:
    return [f"{prefix}{i:09d}".encode() for i in range(n)]


def exchange(client_size: int, server_size: int, structure: str, fpr: float = 1e-9):
    """One real openmined-psi exchange: (request, response, setup), serialized."""
    client = psi.client.CreateWithNewKey(True)
    server = psi.server.CreateWithNewKey(True)
    request = client.CreateRequest(items("c", client_size))
    response = server.ProcessRequest(request)
    setup = server.CreateSetupMessage(
        fpr, client_size, items("s", server_size), STRUCTURES[structure]
    )
    return request.SerializeToString(), response.SerializeToString(), setup.SerializeToString()


class TestMessageSizes:
    @pytest.mark.parametrize("structure", ["gcs", "raw"])
    @pytest.mark.parametrize(("client_size", "server_size"), [(1, 1), (10, 300), (300, 10)])
    def test_real_messages_fit_their_limits(self, structure, client_size, server_size):
        """Request, response and setup of a real exchange never exceed the computed limits."""
        request, response, setup = exchange(client_size, server_size, structure)
        assert len(request) <= psi_limits.max_elements_bytes(client_size)
        assert len(response) <= psi_limits.max_elements_bytes(client_size)
        assert len(setup) <= psi_limits.max_setup_bytes(server_size, structure)
        assert len(setup) + len(response) <= psi_limits.exchange_bytes(
            client_size, server_size, structure
        )


class TestHashRange:
    @pytest.mark.parametrize(("client_size", "server_size"), [(10, 50), (50, 10), (7, 7)])
    def test_hash_range_is_the_librarys(self, client_size, server_size):
        """gcs_hash_range reproduces the range openmined-psi writes into a GCS setup."""
        fpr = 1e-6
        _, _, body = exchange(client_size, server_size, "gcs", fpr)
        setup = psi.ServerSetup()
        setup.ParseFromString(body)
        assert setup.gcs.hash_range == psi_limits.gcs_hash_range(client_size, server_size, fpr)

    def test_fit_ends_where_the_range_reaches_the_limit(self):
        """gcs_fits and check_gcs_fits agree, and refuse exactly from MAX_HASH_RANGE up."""
        fpr = 1e-9
        for size in (60_000, 67_000, 68_000, 70_000, 100_000):
            fits = psi_limits.gcs_hash_range(size, size, fpr) < psi_limits.MAX_HASH_RANGE
            assert psi_limits.gcs_fits(size, size, fpr) is fits
            if fits:
                psi_limits.check_gcs_fits(size, size, fpr)
            else:
                with pytest.raises(ResourceLimit, match="raise the rate"):
                    psi_limits.check_gcs_fits(size, size, fpr)
        assert psi_limits.gcs_fits(60_000, 60_000, fpr)
        assert not psi_limits.gcs_fits(70_000, 70_000, fpr)

    @pytest.mark.parametrize("size", [1_000, 70_000, 100_000, 1_000_000])
    def test_benchmark_rate_is_one_the_two_party_mode_accepts(self, size):
        """The baseline's coarsened rate fits the same limit the nodes and coordinator check."""
        fpr = openmined_fpr(size, size)
        assert psi_limits.gcs_fits(size, size, fpr)
        assert fpr == 1e-9 or not psi_limits.gcs_fits(size, size, fpr / 10)


class TestCoordinatorAgrees:
    """The coordinator checks the nodes' numbers: no round it starts is one a node refuses."""

    GCS = Bilateral("gemeente", "woonbron", false_positive_rate=1e-9)
    RAW = Bilateral("gemeente", "woonbron", false_positive_rate=1e-9, data_structure="raw")

    @pytest.mark.parametrize("server_size", [1, 300, 1_000, 2_000_000])
    def test_relayed_setup_limit_is_the_nodes(self, server_size):
        """The largest setup the coordinator relays is the largest a client node parses."""
        assert bilateral.setup_limit(self.GCS, server_size) == psi_limits.max_setup_bytes(
            server_size, "gcs"
        )
        assert bilateral.setup_limit(self.RAW, server_size) == psi_limits.max_setup_bytes(
            server_size, "raw"
        )

    def test_gcs_setup_is_66_bits_a_record_not_9_bytes(self):
        """A GCS setup may spend 8.25 bytes a record (62+4 bits), as the node checks, not 9."""
        assert bilateral.setup_limit(self.GCS, 1_000) == 8_250 + psi_limits.MESSAGE_OVERHEAD
        _, _, setup = exchange(10, 1_000, "gcs")
        assert len(setup) <= bilateral.setup_limit(self.GCS, 1_000)

    def test_one_message_limit_ends_where_the_nodes_exchange_does(self):
        """check_sizes refuses from the first server size whose exchange passes one message.

        At 9 bytes a record the coordinator refused 1.9 million server records that
        the nodes' limit allows in one message; now both end at the same size.
        """
        room = MAX_MESSAGE_BYTES - bilateral.ENVELOPE_BYTES
        last = max(
            size
            for size in range(2_030_000, 2_040_000)
            if psi_limits.exchange_bytes(1, size, "gcs") <= room
        )
        assert room < 1_900_000 * 9  # the old per-record bound
        bilateral.check_sizes(self.GCS, 1, 1_900_000)
        bilateral.check_sizes(self.GCS, 1, last)
        with pytest.raises(RoundFailed, match="use a network round"):
            bilateral.check_sizes(self.GCS, 1, last + 1)

    def test_hash_range_refusal_is_the_shared_one(self):
        """The coordinator refuses a GCS round exactly when the shared limit does, same reason."""
        assert psi_limits.gcs_fits(67_000, 67_000, 1e-9)
        assert not psi_limits.gcs_fits(68_000, 68_000, 1e-9)
        for size in (60_000, 67_000, 68_000, 70_000):
            if psi_limits.gcs_fits(size, size, 1e-9):
                bilateral.check_sizes(self.GCS, size, size)
                continue
            with pytest.raises(ResourceLimit) as shared:
                psi_limits.check_gcs_fits(size, size, 1e-9)
            with pytest.raises(RoundFailed, match="raise the rate") as refused:
                bilateral.check_sizes(self.GCS, size, size)
            assert str(refused.value) == str(shared.value)


class TestSettings:
    def test_valid_settings_have_no_problems(self):
        """Every data structure with a rate strictly between 0 and 1 is usable."""
        for structure in psi_limits.DATA_STRUCTURES:
            assert psi_limits.settings_problems(1e-9, structure) == []

    @pytest.mark.parametrize("fpr", [0.0, 1.0, -0.5, 2.0])
    def test_rate_outside_zero_one_is_refused(self, fpr):
        """A false-positive rate of 0, 1 or beyond is named as the problem."""
        assert psi_limits.settings_problems(fpr, "gcs") == [
            "false_positive_rate must be between 0 and 1"
        ]

    def test_unknown_structure_is_refused(self):
        """A data structure openmined-psi's two-party mode does not use is named as the problem."""
        assert psi_limits.settings_problems(1e-9, "bloom_filter") == [
            "data_structure must be 'gcs' or 'raw'"
        ]
