"""An actively malicious coordinator against real node servers over real mTLS.

The attacker (`tests.support.mallory.Mallory`) holds exactly what a coordinator holds:
its TLS key and certificate, its manifest signing key and the roster it exported. Every
test mounts one attack and passes only when a node refuses it, with a clear status and
the refusal in that node's own audit log; against the first version of the protocol each
of these attacks worked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kruispunt import signing, wire
from kruispunt.roster import Roster, RosterPartner, render_roster
from kruispunt.v1 import common_pb2, node_pb2
from psi_node import oprf
from tests.support.mallory import Mallory, audited, refused

PARTNERS = ["gemeente", "woonbron", "schuldhulp"]


@pytest.fixture
def net(network_factory):
    n = network_factory(PARTNERS, per_partner=30, overlaps={2: 5, 3: 3})
    n.add_purpose()
    return n


@pytest.fixture
def mallory(net):
    attacker = Mallory(net)
    yield attacker
    attacker.close()


def probe(x: bytes) -> bytes:
    """H(x) for an identifier of the attacker's choosing (public: no key involved)."""
    return oprf.hash_to_group([x])


class TestBoundedConsent:
    def test_subset_manifest_is_refused(self, net, mallory):
        """A manifest naming only part of the agreed partners is refused and audited."""
        consent = mallory.propose("gemeente", mallory.manifest(partners=["gemeente", "woonbron"]))
        assert not consent.granted
        assert "only part of the agreed partners" in consent.reason
        assert "schuldhulp" in consent.reason
        assert any("only part" in d["reason"] for d in audited(net, "gemeente", "consent.refused"))
        assert net.nodes["gemeente"].rounds.rounds_in_flight() == []

    def test_listed_subset_is_accepted(self, network_factory):
        """A subset the policy lists in allowed_subsets is consented to."""
        n = network_factory(PARTNERS, per_partner=20, overlaps={2: 3}, start=False)
        toml = n.node_dirs["gemeente"] / "node.toml"
        toml.write_text(toml.read_text() + 'allowed_subsets = [["woonbron"]]\n')
        for pid in PARTNERS:
            n.start_node(pid)
        n.start_coordinator()
        n.add_purpose()
        attacker = Mallory(n)
        try:
            consent = attacker.propose(
                "gemeente", attacker.manifest(partners=["gemeente", "woonbron"])
            )
        finally:
            attacker.close()
        assert consent.granted, consent.reason
        n.nodes["gemeente"].rounds.abort(consent.round_id, "test over")

    def test_century_retention_is_refused(self, net, mallory):
        """A manifest keeping results for 100 years exceeds the node's retention cap."""
        consent = mallory.propose("woonbron", mallory.manifest(result_retention_days=36_500))
        assert not consent.granted
        assert "longer than this node allows (90)" in consent.reason

    def test_back_to_back_rounds_are_refused(self, network_factory):
        """With the default interval, a second round of a purpose within a day is refused."""
        n = network_factory(PARTNERS, per_partner=20, overlaps={2: 3}, start=False)
        toml = n.node_dirs["gemeente"] / "node.toml"
        toml.write_text(toml.read_text().replace("min_round_interval_hours = 0\n", ""))
        for pid in PARTNERS:
            n.start_node(pid)
        n.start_coordinator()
        n.add_purpose()
        attacker = Mallory(n)
        try:
            first = attacker.propose("gemeente", attacker.manifest())
            assert first.granted, first.reason
            n.nodes["gemeente"].rounds.abort(first.round_id, "test over")
            answers = [attacker.propose("gemeente", attacker.manifest()) for _ in range(4)]
        finally:
            attacker.close()
        assert not any(a.granted for a in answers)
        assert all("min_round_interval_hours" in a.reason for a in answers)

    def test_unagreed_purpose_version_is_refused(self, network_factory):
        """A node that pinned purpose_version refuses a manifest for any other version."""
        n = network_factory(PARTNERS, per_partner=20, overlaps={2: 3}, start=False)
        toml = n.node_dirs["schuldhulp"] / "node.toml"
        toml.write_text(toml.read_text() + "purpose_version = 1\n")
        for pid in PARTNERS:
            n.start_node(pid)
        n.start_coordinator()
        n.add_purpose()
        attacker = Mallory(n)
        try:
            consent = attacker.propose("schuldhulp", attacker.manifest(version=7))
        finally:
            attacker.close()
        assert not consent.granted
        assert "version 7 is not the version this organisation agreed to (1)" in consent.reason

    def test_policy_without_max_set_size_does_not_load(self, network_factory):
        """max_set_size is required: a policy without it is a config error naming the table."""
        from kruispunt.errors import ConfigError

        n = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2}, start=False)
        toml = n.node_dirs["gemeente"] / "node.toml"
        text = toml.read_text()
        toml.write_text("\n".join(x for x in text.splitlines() if "max_set_size" not in x))
        with pytest.raises(ConfigError, match=r"\[policy.vroegsignalering\] needs max_set_size"):
            n.node_config("gemeente")

    def test_damaged_consent_history_refuses_rather_than_forgets(self, net, mallory):
        """An unreadable consent history never lifts the interval limit: the node refuses."""
        state = net.node_config("woonbron").state_dir
        (state / "last-consent.json").write_text("{not json")
        consent = mallory.propose("woonbron", mallory.manifest())
        assert not consent.granted
        assert "last-consent.json" in consent.reason


class TestRoster:
    def test_manifest_for_a_roster_of_her_own_is_refused(self, net, mallory):
        """A roster Mallory wrote (her own key for a partner) is not the one the node accepted."""
        forged = _forged_roster(mallory.roster, "woonbron")
        consent = mallory.propose("gemeente", mallory.manifest(roster_sha256=forged.digest))
        assert not consent.granted
        assert "this node accepted roster" in consent.reason
        assert net.nodes["gemeente"].rounds.rounds_in_flight() == []

    def test_consent_forged_with_her_own_key_is_refused(self, net, mallory):
        """A consent she signs herself for a partner, forwarded at Blind, does not verify."""
        rnd = mallory.open_round()
        fake = common_pb2.Consent()
        fake.ParseFromString(rnd.consents["woonbron"].consent)
        fake.set_size = 1  # she wants a smaller set believed
        body = fake.SerializeToString(deterministic=True)
        forged = common_pb2.SignedConsent(
            consent=body,
            signature=signing.sign(signing.generate_signing_key(), signing.CONTEXT_CONSENT, body),
        )
        consents = [forged if p == "woonbron" else rnd.consents[p] for p in rnd.partners]
        err = refused(net, "gemeente", lambda: rnd.blind("gemeente", consents))
        assert "woonbron does not verify" in err.details()
        assert net.nodes["gemeente"].rounds.rounds_in_flight() == []


class TestAuthenticatedHops:
    """Mallory runs the round by hand and twists one hop; the next node refuses."""

    def test_appended_points_are_refused(self, net, mallory):
        """H(x*) appended to a partner's batch: the evaluator refuses before evaluating."""
        rnd = mallory.open_round()
        blinded = rnd.blind_all()
        points, chain = blinded["woonbron"]
        target = rnd.evaluator("woonbron", 1)
        refused(
            net,
            target,
            lambda: rnd.evaluate(target, "woonbron", 1, points + probe(b"bsn:123456782"), chain),
        )

    def test_replaced_points_are_refused(self, net, mallory):
        """A point replaced by H(x*) (same count): the chunk digest no longer matches."""
        rnd = mallory.open_round()
        points, chain = rnd.blind_all()["woonbron"]
        swapped = probe(b"bsn:123456782") + points[wire.POINT_BYTES :]
        target = rnd.evaluator("woonbron", 1)
        err = refused(net, target, lambda: rnd.evaluate(target, "woonbron", 1, swapped, chain))
        assert "does not match the digest" in err.details()

    def test_relabelled_origin_is_refused(self, net, mallory):
        """woonbron's batch presented as schuldhulp's: the origin statement says otherwise."""
        rnd = mallory.open_round()
        points, chain = rnd.blind_all()["woonbron"]
        target = rnd.evaluator("schuldhulp", 1)
        refused(net, target, lambda: rnd.evaluate(target, "schuldhulp", 1, points, chain))

    def test_own_batch_back_is_refused(self, net, mallory):
        """A node is sent its own blinded set to evaluate (which would strip its blinding)."""
        rnd = mallory.open_round()
        points, chain = rnd.blind_all()["gemeente"]
        refused(net, "gemeente", lambda: rnd.evaluate("gemeente", "gemeente", 1, points, chain))

    def test_skipped_hop_is_refused(self, net, mallory):
        """A set sent on to step 2, or back to its origin, without its step-1 hop."""
        rnd = mallory.open_round()
        points, chain = rnd.blind_all()["woonbron"]
        second = rnd.evaluator("woonbron", 2)
        refused(net, second, lambda: rnd.evaluate(second, "woonbron", 2, points, chain))
        rnd2 = mallory.open_round()
        points, chain = rnd2.blind_all()["woonbron"]
        refused(net, "woonbron", lambda: rnd2.finalize("woonbron", points, chain))
        # Both refusals ended the round at the refusing node, keys and all.
        assert rnd.round_id not in net.nodes[second].rounds.rounds_in_flight()
        assert rnd2.round_id not in net.nodes["woonbron"].rounds.rounds_in_flight()

    def test_replayed_points_are_refused(self, net, mallory):
        """Points and statements from an earlier round, replayed in a new one."""
        old = mallory.open_round()
        points, chain = old.blind_all()["woonbron"]
        new = mallory.open_round()
        new.blind_all()
        target = new.evaluator("woonbron", 1)
        refused(net, target, lambda: new.evaluate(target, "woonbron", 1, points, chain))


class TestEvaluationProofs:
    """Mallory relays an evaluated set with another proof or source than the evaluator's:
    the next node refuses before it uses a point, and blames no honest evaluator."""

    def first_hop(self, rnd):
        points, chain = rnd.blind_all()["woonbron"]
        first = rnd.evaluator("woonbron", 1)
        return first, *rnd.evaluate(first, "woonbron", 1, points, chain)

    def test_a_proof_of_her_own_is_refused_without_blaming_the_evaluator(self, net, mallory):
        """A proof altered in transit fails, and the node finds it is not the one signed."""
        rnd = mallory.open_round()
        first, points, chain = self.first_hop(rnd)
        source, proofs = rnd.relay[("woonbron", 1)]
        bent = proofs[0][:-1] + bytes([proofs[0][-1] ^ 1])
        rnd.relay[("woonbron", 1)] = (source, [bent, *proofs[1:]])
        second = rnd.evaluator("woonbron", 2)
        err = refused(net, second, lambda: rnd.evaluate(second, "woonbron", 2, points, chain))
        assert f"the evaluation proofs relayed are not those {first} signed" in err.details()
        assert "another key" not in err.details()

    def test_a_source_of_her_own_is_refused(self, net, mallory):
        """A proof checked over points the evaluator was never given would prove nothing."""
        rnd = mallory.open_round()
        _, points, chain = self.first_hop(rnd)
        source, proofs = rnd.relay[("woonbron", 1)]
        swapped = probe(b"bsn:123456782") + source[wire.POINT_BYTES :]
        rnd.relay[("woonbron", 1)] = (swapped, proofs)
        second = rnd.evaluator("woonbron", 2)
        err = refused(net, second, lambda: rnd.evaluate(second, "woonbron", 2, points, chain))
        assert "the source of chunk 0 does not match the digest signed at step 0" in err.details()

    def test_a_set_finalized_without_its_proofs_is_refused(self, net, mallory):
        """The origin takes its set back only with the last evaluator's proofs."""
        rnd = mallory.open_round()
        points, chain = rnd.blind_all()["woonbron"]
        points, chain = rnd.route("woonbron", points, chain)
        last = rnd.evaluator("woonbron", len(rnd.partners) - 1)
        source, _ = rnd.relay[("woonbron", len(rnd.partners) - 1)]
        rnd.relay[("woonbron", len(rnd.partners) - 1)] = (source, [])
        err = refused(net, "woonbron", lambda: rnd.finalize("woonbron", points, chain))
        assert f"chunk 0 arrived without the proof of {last}'s evaluation" in err.details()


class TestNoLeftovers:
    def test_no_round_key_outlives_its_manifest(self, net, mallory):
        """A round whose manifest expired is dropped, keys and all, at the next housekeeping."""
        from datetime import timedelta

        rnd = mallory.open_round()
        rounds = net.nodes["gemeente"].rounds
        assert rnd.round_id in rounds.rounds_in_flight()
        real_now = rounds.now
        rounds.now = lambda: real_now() + timedelta(seconds=601)  # the manifests live 600 s
        try:
            assert rnd.round_id in rounds.expire_idle()
        finally:
            rounds.now = real_now
        assert rnd.round_id not in rounds.rounds_in_flight()
        aborted = [
            e.details["reason"]
            for e in rounds.audit.events()
            if e.event == "round.aborted" and e.round_id == rnd.round_id
        ]
        assert aborted == ["the round's manifest expired"]

    def test_each_round_sends_records_in_an_order_of_its_own(self, net, mallory):
        """The node's records travel in a fresh random order per round, never export order:
        an export sorted by BSN or intake date shows nothing through the order of its tags."""
        orders = []
        for _ in range(2):
            rnd = mallory.open_round()
            state = net.nodes["gemeente"].rounds.get_round(rnd.round_id).state
            orders.append(list(state.order))
            net.nodes["gemeente"].rounds.abort(rnd.round_id, "test over")
        size = len(net.data.ids["gemeente"])
        assert sorted(orders[0]) == sorted(orders[1]) == list(range(size))
        assert orders[0] != list(range(size))
        assert orders[0] != orders[1]


class TestProbesLearnNothing:
    def test_injected_probes_are_refused_and_what_she_saw_reveals_no_member(self, net, mallory):
        """She tries H(x*) at every hop for households she wants to find, then relays
        honestly; from every point and tag she saw she can form no tag of any x*."""
        data = net.data
        candidates = sorted({cid for ids in data.ids.values() for cid in ids})
        seen: list[bytes] = []
        tags: dict[str, bytes] = {}
        rnd = mallory.open_round()
        points, chain = rnd.blind_all()["woonbron"]
        target = rnd.evaluator("woonbron", 1)
        appended = points + oprf.hash_to_group(candidates[:5])
        refused(net, target, lambda: rnd.evaluate(target, "woonbron", 1, appended, chain))
        # The refusal dropped the round at that node: nothing more of it is done there.
        assert rnd.round_id not in net.nodes[target].rounds.rounds_in_flight()
        # Honest from here on, in a fresh round, so that she sees a whole round's traffic.
        rnd = mallory.open_round()
        blinded = rnd.blind_all()
        finals = {}
        for origin in rnd.partners:
            points, chain = blinded[origin]
            seen.append(points)
            for step in range(1, len(rnd.partners)):
                target = rnd.evaluator(origin, step)
                points, chain = rnd.evaluate(target, origin, step, points, chain)
                seen.append(points)
            finals[origin] = (points, chain)
        for origin, (got, _salts, _root) in rnd.finalize_all(finals).items():
            tags[origin] = got
        all_tags = {t[i : i + 16]: pid for pid, t in tags.items() for i in range(0, len(t), 16)}
        assert len(all_tags) > 0
        # What she would learn: any x* whose tag she can form from a point she saw.
        learned = set()
        for packed in seen:
            for at in range(0, len(packed), wire.POINT_BYTES):
                point = packed[at : at + wire.POINT_BYTES]
                for x in candidates:
                    tag = oprf.finalize([x], point)
                    if tag in all_tags:
                        learned.add((x, all_tags[tag]))
        assert learned == set()


class TestCheckableResults:
    """She runs a round honestly up to the tally, then lies about the results."""

    @staticmethod
    def finalized(mallory):
        rnd = mallory.open_round()
        blinded = rnd.blind_all()
        routed = {origin: rnd.route(origin, *blinded[origin]) for origin in rnd.partners}
        tags = rnd.finalize_all(routed)
        return rnd, tags

    @staticmethod
    def results(rnd, *, set_sizes=None, **fields):
        """RoundResults for gemeente, with the consented set sizes unless told otherwise."""
        if set_sizes is None:
            set_sizes = {}
            for pid, signed in rnd.consents.items():
                consent = common_pb2.Consent()
                consent.ParseFromString(signed.consent)
                set_sizes[pid] = consent.set_size
        return node_pb2.RoundResults(round_id=rnd.round_id, set_sizes=set_sizes, **fields)

    def deliver(self, mallory, rnd, **fields):
        return mallory.stub("gemeente").Deliver(iter([self.results(rnd, **fields)]), timeout=20)

    def test_everyone_flagged_without_her_own_bit_is_refused(self, net, mallory):
        """Masks lacking the node's own bit (a co-holder list invented for each client)."""
        rnd, _ = self.finalized(mallory)
        size = len(net.data.ids["gemeente"])
        other = 1 << rnd.partners.index("woonbron") | 1 << rnd.partners.index("schuldhulp")
        refused(
            net,
            "gemeente",
            lambda: self.deliver(
                mallory,
                rnd,
                flagged_indices=list(range(size)),
                holder_masks=[other] * size,
                flagged_count=size,
            ),
        )
        assert not list((net.node_dirs["gemeente"] / "results").iterdir())

    def test_fewer_holders_than_the_threshold_is_refused(self, net, mallory):
        """A record flagged with only the node itself as holder (below threshold 2)."""
        rnd, _ = self.finalized(mallory)
        mine = 1 << rnd.partners.index("gemeente")
        err = refused(
            net,
            "gemeente",
            lambda: self.deliver(
                mallory, rnd, flagged_indices=[0], holder_masks=[mine], flagged_count=1
            ),
        )
        assert "fewer holders than the threshold" in err.details()

    def test_a_co_holder_named_without_proof_is_refused(self, net, mallory):
        """A co-holder claimed for a record, with no inclusion proof in its commitment."""
        rnd, _tags = self.finalized(mallory)
        mask = 1 << rnd.partners.index("gemeente") | 1 << rnd.partners.index("woonbron")
        err = refused(
            net,
            "gemeente",
            lambda: self.deliver(
                mallory,
                rnd,
                flagged_indices=[0],
                holder_masks=[mask],
                flagged_count=1,
            ),
        )
        assert "no proof that woonbron holds" in err.details()

    def test_a_partner_outside_the_round_is_refused(self, net, mallory):
        """A mask with a bit beyond the manifest's partners."""
        rnd, _ = self.finalized(mallory)
        mask = 1 << rnd.partners.index("gemeente") | 1 << 7
        err = refused(
            net,
            "gemeente",
            lambda: self.deliver(
                mallory, rnd, flagged_indices=[0], holder_masks=[mask], flagged_count=1
            ),
        )
        assert "outside this round" in err.details()

    def test_set_sizes_other_than_the_consents_are_refused(self, net, mallory):
        """Set sizes that differ from what the partners signed in their consents."""
        rnd, _ = self.finalized(mallory)
        sizes = {p: 999 for p in rnd.partners}
        err = refused(net, "gemeente", lambda: self.deliver(mallory, rnd, set_sizes=sizes))
        assert "signed consents" in err.details()

    def test_abort_after_commit_is_refused_and_the_results_stay(self, net, mallory):
        """An Abort for a committed round cannot withdraw the results a node published."""
        summary = net.run()
        assert summary.state == "completed", summary.reason
        path = next(p for p in summary.partners if p.partner_id == "gemeente").result_path
        before = Path(path).read_bytes()
        refused(
            net,
            "gemeente",
            lambda: mallory.stub("gemeente").Abort(
                node_pb2.AbortRequest(round_id=summary.round_id, reason="withdraw"), timeout=10
            ),
        )
        assert Path(path).read_bytes() == before


class TestTwoParty:
    def test_unsigned_request_of_her_own_is_refused(self, mallory_pair):
        """A request she made from BSNs of her choosing, sent to the server: refused."""
        import private_set_intersection.python as psi

        net, mallory = mallory_pair
        rnd = mallory.open_round()
        client = psi.client.CreateWithNewKey(True)
        body = client.CreateRequest([b"bsn:123456782", b"bsn:111222333"]).SerializeToString()
        message = node_pb2.BilateralPayload(round_id=rnd.round_id, payload=body, set_size=2)
        err = refused(net, "woonbron", lambda: mallory.stub("woonbron").BilateralResponse(message))
        assert "not signed by gemeente" in err.details()

    def test_the_clients_request_with_another_set_size_is_refused(self, mallory_pair):
        """The client's real request relayed with a set size she changed."""
        net, mallory = mallory_pair
        rnd = mallory.open_round()
        real = mallory.stub("gemeente").BilateralRequest(
            common_pb2.RoundRef(round_id=rnd.round_id), timeout=20
        )
        real.set_size += 1
        refused(net, "woonbron", lambda: mallory.stub("woonbron").BilateralResponse(real))

    def test_a_made_up_server_answer_is_refused_by_the_client(self, mallory_pair):
        """A setup and response she made herself, handed to the client: refused."""
        import private_set_intersection.python as psi

        net, mallory = mallory_pair
        rnd = mallory.open_round()
        request = mallory.stub("gemeente").BilateralRequest(
            common_pb2.RoundRef(round_id=rnd.round_id), timeout=20
        )
        server = psi.server.CreateWithNewKey(True)
        req = psi.Request()
        req.ParseFromString(request.payload)
        response = server.ProcessRequest(req).SerializeToString()
        setup = server.CreateSetupMessage(
            1e-9, request.set_size, [b"bsn:123456782"], psi.DataStructure.RAW
        ).SerializeToString()
        exchange = node_pb2.BilateralExchange(
            round_id=rnd.round_id, setup=setup, response=response, server_set_size=1
        )
        refused(net, "gemeente", lambda: mallory.stub("gemeente").BilateralResult(exchange))
        assert not list((net.node_dirs["gemeente"] / "results").iterdir())


def _forged_roster(roster: Roster, pid: str) -> Roster:
    """The roster with `pid`'s signing key swapped for one Mallory holds."""
    mine = signing.public_key_bytes(signing.generate_signing_key().public_key())
    partners = tuple(
        RosterPartner(
            id=p.id,
            organisation=p.organisation,
            signing_key=mine if p.id == pid else p.signing_key,
            agreement_key=p.agreement_key,
            tls_fingerprint=p.tls_fingerprint,
        )
        for p in roster.partners
    )
    forged = Roster(
        network=roster.network,
        version=roster.version + 1,
        coordinator_signing_key=roster.coordinator_signing_key,
        partners=partners,
    )
    assert render_roster(forged)  # a well-formed roster, only not the accepted one
    return forged
