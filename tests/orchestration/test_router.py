"""The federation router: the hash ring, instance health, and the routing order."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from collections import Counter

import pytest

from limit_graph.core.errors import ConfigError, InvalidInput
from limit_graph.core.models import BackendKind
from limit_graph.core.settings import BackendInstance, BackendsSettings
from limit_graph.orchestration.hash_ring import HashRing
from limit_graph.orchestration.router import (
    InstanceHealth,
    InstanceInfo,
    Router,
    target_family,
)
from tests.fixtures.clock import FakeClock

REMOTE = BackendKind.REMOTE


def session_ids(count: int, seed: int = 7) -> list[uuid.UUID]:
    rng = random.Random(seed)
    return [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(count)]


def remote(*names: str, capabilities: tuple[str, ...] = ()) -> list[InstanceInfo]:
    return [InstanceInfo(name, REMOTE, frozenset(capabilities)) for name in names]


def session_owned_by(router: Router, name: str, agent: str = "echo") -> uuid.UUID:
    return next(s for s in session_ids(1000, seed=11) if router.route(REMOTE, agent, s)[0] == name)


# --- hash ring ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names",
    [("node-a", "node-b", "node-c"), ("remote-a", "remote-b", "remote-c"), ("r1", "r2", "r3")],
)
def test_ring_spreads_sessions_evenly(names: tuple[str, str, str]) -> None:
    # At the default 640 vnodes an instance's share of the ring spreads by about
    # 1/sqrt(640) = 4 %, so three instances stay within 10 % of an even share.
    ring = HashRing(names)
    counts = Counter(ring.lookup(str(s)) for s in session_ids(10_000))
    assert set(counts) == set(names)
    for name, count in counts.items():
        assert 3333 - 333 <= count <= 3333 + 333, (name, count)


def test_removing_a_node_moves_only_its_sessions() -> None:
    ring = HashRing(["node-a", "node-b", "node-c"])
    keys = [str(s) for s in session_ids(10_000)]
    before = {key: ring.lookup(key) for key in keys}
    ring.remove("node-b")
    assert ring.nodes == ("node-a", "node-c")
    after = {key: ring.lookup(key) for key in keys}
    moved = [key for key in keys if before[key] != after[key]]
    assert moved
    assert all(before[key] == "node-b" for key in moved)
    assert all(after[key] != "node-b" for key in keys)


def test_adding_a_node_moves_about_a_quarter_onto_it() -> None:
    ring = HashRing(["node-a", "node-b", "node-c"])
    keys = [str(s) for s in session_ids(10_000)]
    before = {key: ring.lookup(key) for key in keys}
    ring.add("node-d")
    moved = [key for key in keys if ring.lookup(key) != before[key]]
    assert 0.15 * len(keys) <= len(moved) <= 0.35 * len(keys)
    assert all(ring.lookup(key) == "node-d" for key in moved)


def test_positions_are_the_same_in_every_process() -> None:
    ring = HashRing(["node-a", "node-b", "node-c"])
    key = "0b0e3c52-6f1e-4c5a-9d0a-3f1d2c4b5a69"
    script = (
        "from limit_graph.orchestration.router import HashRing;"
        "r = HashRing(['node-a', 'node-b', 'node-c']);"
        f"print(','.join(r.preference({key!r})))"
    )
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip().split(",") == ring.preference(key)
    # Pinned: changing the hashing would move every session to another instance.
    assert ring.preference(key) == ["node-c", "node-a", "node-b"]


def test_preference_lists_each_node_once_from_the_owner() -> None:
    ring = HashRing(["a", "b", "c", "d"], vnodes=20)
    for session in session_ids(200):
        order = ring.preference(str(session))
        assert order[0] == ring.lookup(str(session))
        assert sorted(order) == ["a", "b", "c", "d"]
    seconds = Counter(ring.preference(str(s))[1] for s in session_ids(2000))
    assert len(seconds) == 4  # failover spreads too, not always to one neighbour


def test_ring_errors_are_clear() -> None:
    ring = HashRing()
    with pytest.raises(LookupError, match="ring is empty"):
        ring.lookup("k")
    with pytest.raises(LookupError, match="ring is empty"):
        ring.preference("k")
    ring.add("a")
    with pytest.raises(ValueError, match="'a' is already on the ring"):
        ring.add("a")
    with pytest.raises(ValueError, match="'b' is not on the ring"):
        ring.remove("b")
    ring.remove("a")
    assert ring.nodes == ()
    with pytest.raises(LookupError):
        ring.lookup("k")
    with pytest.raises(ValueError, match="vnodes"):
        HashRing(vnodes=0)


# --- health ---------------------------------------------------------------------------


def test_failures_make_an_instance_failing_then_probing() -> None:
    clock = FakeClock()
    health = InstanceHealth(clock=clock)
    health.record_failure("r")
    health.record_failure("r")
    assert health.state("r") == "healthy"
    health.record_failure("r")
    assert health.state("r") == "failing"
    assert not health.try_probe("r")
    clock.now += 4.9
    assert health.state("r") == "failing"
    clock.now += 0.1
    assert health.state("r") == "probing"
    assert health.try_probe("r")
    assert not health.try_probe("r")  # exactly one probe
    health.record_success("r")
    assert health.state("r") == "healthy"
    assert health.snapshot()["r"]["consecutive_failures"] == 0


def test_a_success_resets_the_consecutive_count() -> None:
    health = InstanceHealth(clock=FakeClock())
    for _ in range(2):
        health.record_failure("r")
    health.record_success("r")
    for _ in range(2):
        health.record_failure("r")
    assert health.state("r") == "healthy"


def test_failed_probes_double_the_wait_up_to_the_cap() -> None:
    clock = FakeClock()
    health = InstanceHealth(clock=clock)
    for _ in range(3):
        health.record_failure("r")
    waits = []
    for _ in range(6):
        start = clock.now
        while health.state("r") == "failing":
            clock.now += 0.5
        waits.append(clock.now - start)
        assert health.try_probe("r")
        health.record_failure("r")
    assert waits == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    # Healing resets the wait: three more failures wait 5 s again.
    clock.now += 60
    health.record_success("r")
    for _ in range(3):
        health.record_failure("r")
    clock.now += 5
    assert health.state("r") == "probing"


def test_an_unanswered_probe_frees_its_slot_after_the_timeout() -> None:
    clock = FakeClock()
    health = InstanceHealth(clock=clock, probe_timeout_s=30)
    for _ in range(3):
        health.record_failure("r")
    clock.now += 5
    assert health.try_probe("r")
    clock.now += 29
    assert not health.try_probe("r")
    clock.now += 1
    assert health.try_probe("r")


def test_live_runner_and_snapshot() -> None:
    clock = FakeClock()
    health = InstanceHealth(clock=clock)
    health.track("quiet")
    assert not health.has_live_runner("quiet", 30)
    assert not health.has_live_runner("never-seen", 30)
    health.heartbeat("busy")
    clock.now += 30
    assert health.has_live_runner("busy", 30)
    clock.now += 0.5
    assert not health.has_live_runner("busy", 30)
    for _ in range(3):
        health.record_failure("busy")
    assert health.snapshot() == {
        "busy": {
            "state": "failing",
            "consecutive_failures": 3,
            "seconds_since_heartbeat": 30.5,
            "probe_in_s": 5.0,
        },
        "quiet": {
            "state": "healthy",
            "consecutive_failures": 0,
            "seconds_since_heartbeat": None,
            "probe_in_s": None,
        },
    }


# --- router ---------------------------------------------------------------------------


def test_a_session_stays_on_its_instance_in_ring_order() -> None:
    router = Router(remote("r1", "r2", "r3"))
    ring = HashRing(["r1", "r2", "r3"])
    for session in session_ids(300):
        order = router.route(REMOTE, "echo", session)
        assert order == ring.preference(str(session))
        assert router.route(REMOTE, "echo", session) == order
    firsts = Counter(router.route(REMOTE, "echo", s)[0] for s in session_ids(300))
    assert set(firsts) == {"r1", "r2", "r3"}


def test_only_instances_serving_the_agent_are_candidates() -> None:
    router = Router(
        [
            *remote("general"),
            *remote("gpu-1", "gpu-2", capabilities=("train",)),
            InstanceInfo("local", BackendKind.LOCAL),
        ]
    )
    assert router.get("gpu-1").serves("train")
    assert not router.get("gpu-1").serves("echo")
    assert router.get("general").serves("anything")
    firsts = Counter(router.route(REMOTE, "train", s)[0] for s in session_ids(300))
    assert set(firsts) == {"general", "gpu-1", "gpu-2"}
    for session in session_ids(50):
        assert router.route(REMOTE, "echo", session) == ["general"]
        assert sorted(router.route(REMOTE, "train", session)) == ["general", "gpu-1", "gpu-2"]


def test_no_candidate_names_the_kind_and_the_agent() -> None:
    router = Router(
        [*remote("gpu-1", capabilities=("train",)), InstanceInfo("aer", BackendKind.QUANTUM)]
    )
    with pytest.raises(InvalidInput, match=r"no remote instance serves agent 'echo'") as err:
        router.route(REMOTE, "echo", uuid.uuid4())
    assert "gpu-1 serves train" in err.value.detail
    with pytest.raises(InvalidInput, match=r"^no local instance serves agent 'echo'$"):
        router.route(BackendKind.LOCAL, "echo", uuid.uuid4())
    with pytest.raises(InvalidInput, match="no remote instance serves agent 'echo'"):
        router.failover(REMOTE, "echo", uuid.uuid4(), set())


def test_unknown_instance_names_the_known_ones() -> None:
    router = Router(remote("r2", "r1"))
    with pytest.raises(InvalidInput) as err:
        router.get("r9")
    assert err.value.detail == "unknown backend instance 'r9'; known instances: r1, r2"
    assert router.get("r1") == InstanceInfo("r1", REMOTE)
    assert [i.name for i in router.instances(REMOTE)] == ["r2", "r1"]
    assert router.instances(BackendKind.QUANTUM) == []


def test_duplicate_instance_names_are_refused() -> None:
    with pytest.raises(InvalidInput, match="two backend instances are named 'r1'"):
        Router([*remote("r1"), InstanceInfo("r1", BackendKind.QUANTUM)])


def test_failing_instances_go_last_until_a_probe_heals_them() -> None:
    clock = FakeClock()
    router = Router(remote("r1", "r2", "r3"), health=InstanceHealth(clock=clock))
    session = session_owned_by(router, "r1")
    other = next(s for s in session_ids(1000, seed=3) if s != session)
    healthy_order = router.route(REMOTE, "echo", session)
    for _ in range(3):
        router.health.record_failure("r1")
    order = router.route(REMOTE, "echo", session)
    assert order == [*(n for n in healthy_order if n != "r1"), "r1"]
    assert router.route(REMOTE, "echo", other)[-1] == "r1"
    clock.now += 5
    assert router.route(REMOTE, "echo", other)[0] == "r1"  # the probe, whoever asks first
    assert router.route(REMOTE, "echo", session)[-1] == "r1"  # only one probe at a time
    router.health.record_success("r1")
    assert router.route(REMOTE, "echo", session) == healthy_order


def test_a_failed_probe_shuts_the_instance_out_for_twice_as_long() -> None:
    clock = FakeClock()
    router = Router(remote("r1", "r2"), health=InstanceHealth(clock=clock))
    session = session_owned_by(router, "r1")
    for _ in range(3):
        router.health.record_failure("r1")
    clock.now += 5
    assert router.route(REMOTE, "echo", session)[0] == "r1"
    router.health.record_failure("r1")
    clock.now += 9.9
    assert router.route(REMOTE, "echo", session) == ["r2", "r1"]
    clock.now += 0.1
    assert router.route(REMOTE, "echo", session) == ["r1", "r2"]


def test_when_all_fail_they_are_still_listed() -> None:
    router = Router(remote("r1", "r2", "r3"))
    session = session_ids(1)[0]
    healthy_order = router.route(REMOTE, "echo", session)
    for name in ("r1", "r2", "r3"):
        for _ in range(3):
            router.health.record_failure(name)
    assert router.route(REMOTE, "echo", session) == healthy_order


def test_failover_walks_the_order_once() -> None:
    router = Router(remote("r1", "r2", "r3"))
    session = session_ids(1)[0]
    order = router.route(REMOTE, "echo", session)
    tried: set[str] = set()
    walked = []
    while (name := router.failover(REMOTE, "echo", session, tried)) is not None:
        walked.append(name)
        tried.add(name)
    assert walked == order
    assert router.failover(REMOTE, "echo", session, {order[0]}) == order[1]


def test_failover_prefers_healthy_instances_and_then_failing_ones() -> None:
    router = Router(remote("r1", "r2", "r3"), health=InstanceHealth(clock=FakeClock()))
    session = session_owned_by(router, "r1")
    order = router.route(REMOTE, "echo", session)
    for _ in range(3):
        router.health.record_failure(order[1])
    assert router.failover(REMOTE, "echo", session, {"r1"}) == order[2]
    assert router.failover(REMOTE, "echo", session, {"r1", order[2]}) == order[1]


def test_a_deep_queue_spills_onto_a_shallower_instance() -> None:
    router = Router(remote("r1", "r2", "r3"))
    session = session_owned_by(router, "r1")
    order = router.route(REMOTE, "echo", session)
    depths = {"r1": 10, order[1]: 4, order[2]: 3}
    # 10 <= 2 * mean(4, 3) + 1 = 8?  No: r1 is too deep, the shallowest goes first.
    spilled = router.route(REMOTE, "echo", session, depths.__getitem__)
    assert spilled == [order[2], "r1", order[1]]
    depths["r1"] = 8  # not more than 2 * 3.5 + 1: affinity wins
    assert router.route(REMOTE, "echo", session, depths.__getitem__) == order
    assert (
        router.failover(REMOTE, "echo", session, {order[2]}, {"r1": 10, order[1]: 0}.get)
        == (order[1])
    )


def test_two_instances_spill_too() -> None:
    router = Router(remote("r1", "r2"))
    session = session_owned_by(router, "r1")
    # With the mean over all candidates (r1 included), 2 * mean + 1 >= r1's depth always.
    assert router.route(REMOTE, "echo", session, {"r1": 5, "r2": 2}.__getitem__)[0] == "r1"
    assert router.route(REMOTE, "echo", session, {"r1": 6, "r2": 2}.__getitem__)[0] == "r2"


def test_failing_instances_take_no_spilled_work() -> None:
    router = Router(remote("r1", "r2", "r3"), health=InstanceHealth(clock=FakeClock()))
    session = session_owned_by(router, "r1")
    order = router.route(REMOTE, "echo", session)
    for _ in range(3):
        router.health.record_failure(order[2])
    depths = {"r1": 50, order[1]: 30, order[2]: 0}
    assert router.route(REMOTE, "echo", session, depths.__getitem__)[0] == "r1"


def test_instances_with_a_live_runner_come_first() -> None:
    clock = FakeClock()
    router = Router(remote("r1", "r2", "r3"), health=InstanceHealth(clock=clock))
    session = session_owned_by(router, "r1")
    order = router.route(REMOTE, "echo", session)
    router.health.heartbeat(order[2])
    assert router.route(REMOTE, "echo", session) == [order[2], "r1", order[1]]
    clock.now += 31  # the heartbeat is stale: affinity again
    assert router.route(REMOTE, "echo", session) == order
    router.health.heartbeat("r1")
    router.health.heartbeat(order[2])
    assert router.route(REMOTE, "echo", session) == ["r1", order[2], order[1]]


def test_from_settings_adds_a_default_instance_per_missing_kind() -> None:
    router = Router.from_settings(BackendsSettings())
    assert [i.name for i in router.instances(BackendKind.LOCAL)] == ["local"]
    assert [i.name for i in router.instances(BackendKind.REMOTE)] == ["remote"]
    assert [i.name for i in router.instances(BackendKind.QUANTUM)] == ["aer"]
    assert router.get("aer") == InstanceInfo("aer", BackendKind.QUANTUM, frozenset(), 4, None)
    assert router.route(BackendKind.QUANTUM, "anything", uuid.uuid4()) == ["aer"]
    assert set(router.health.snapshot()) == {"local", "remote", "aer"}


def test_from_settings_keeps_configured_instances() -> None:
    backends = BackendsSettings.model_validate(
        {
            "remote-a": {"type": "remote", "max_runners": 2},
            "ibm": {"type": "quantum", "capabilities": ["sample"], "provider": "ibm"},
        }
    )
    router = Router.from_settings(backends)
    assert router.get("remote-a") == InstanceInfo("remote-a", REMOTE, frozenset(), 2)
    assert [i.name for i in router.instances(REMOTE)] == ["remote-a"]
    assert [i.name for i in router.instances(BackendKind.QUANTUM)] == ["ibm"]
    assert router.get("ibm").capabilities == frozenset({"sample"})
    assert router.get("ibm").provider == "ibm"
    assert [i.name for i in router.instances(BackendKind.LOCAL)] == ["local"]
    with pytest.raises(InvalidInput, match="unknown backend instance 'aer'"):
        router.get("aer")


def test_from_settings_refuses_a_name_the_default_needs() -> None:
    backends = BackendsSettings(instances={"aer": BackendInstance(type=BackendKind.REMOTE)})
    with pytest.raises(ConfigError, match="'aer' is a remote instance.*default quantum"):
        Router.from_settings(backends)


# --- target families (provider) ---------------------------------------------------------

QUANTUM = BackendKind.QUANTUM


def quantum(name: str, provider: str | None = None) -> InstanceInfo:
    return InstanceInfo(name, QUANTUM, provider=provider)


def test_the_target_family_comes_from_the_target_input_of_quantum_work() -> None:
    assert target_family(QUANTUM, {"target": "aer"}) == "aer"
    assert target_family(QUANTUM, {"target": " FAKE:manila"}) == "fake"
    assert target_family(QUANTUM, {"target": "ibm:ibm_fez"}) == "ibm"
    assert target_family(QUANTUM, {"message": "no target"}) is None
    assert target_family(QUANTUM, {"target": 7}) is None
    assert target_family(REMOTE, {"target": "aer"}) is None  # remote instances: no provider


def test_quantum_work_goes_only_to_instances_of_its_target_family() -> None:
    router = Router([quantum("sim", "aer"), quantum("east", "ibm"), quantum("any")])
    for session in session_ids(100):
        assert sorted(router.route(QUANTUM, "quantum.sample", session, family="aer")) == [
            "any",
            "sim",
        ]
        assert sorted(router.route(QUANTUM, "quantum.sample", session, family="ibm")) == [
            "any",
            "east",
        ]
        assert router.route(QUANTUM, "quantum.sample", session, family="fake") == ["any"]
        assert len(router.route(QUANTUM, "echo", session)) == 3  # no target: every instance
    firsts = Counter(
        router.route(QUANTUM, "quantum.sample", s, family="aer")[0] for s in session_ids(300)
    )
    assert set(firsts) == {"any", "sim"}


def test_a_failover_stays_in_the_target_family() -> None:
    router = Router([quantum("sim-1", "aer"), quantum("sim-2", "aer"), quantum("east", "ibm")])
    session = uuid.uuid4()
    first = router.route(QUANTUM, "quantum.sample", session, family="aer")[0]
    second = router.failover(QUANTUM, "quantum.sample", session, {first}, family="aer")
    assert {first, second} == {"sim-1", "sim-2"}
    tried = {"sim-1", "sim-2"}
    assert router.failover(QUANTUM, "quantum.sample", session, tried, family="aer") is None


def test_no_instance_of_the_family_names_the_family_and_what_each_serves() -> None:
    router = Router([quantum("east", "ibm"), InstanceInfo("west", QUANTUM, frozenset({"echo"}))])
    with pytest.raises(InvalidInput) as err:
        router.route(QUANTUM, "quantum.sample", uuid.uuid4(), family="aer")
    assert err.value.detail == (
        "no quantum instance serves aer targets for agent 'quantum.sample' "
        "(east serves every agent on ibm targets; west serves echo on any target)"
    )
    with pytest.raises(InvalidInput, match="no quantum instance serves aer targets"):
        router.failover(QUANTUM, "quantum.sample", uuid.uuid4(), set(), family="aer")


def test_the_provider_comes_from_the_settings() -> None:
    backends = BackendsSettings.model_validate(
        {
            "sim": {"type": "quantum", "provider": "aer"},
            "east": {"type": "quantum", "provider": "ibm"},
        }
    )
    router = Router.from_settings(backends)
    assert router.get("sim") == InstanceInfo("sim", QUANTUM, provider="aer")
    assert router.route(QUANTUM, "quantum.sample", uuid.uuid4(), family="ibm") == ["east"]
