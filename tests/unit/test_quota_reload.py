"""The quota file re-read while serving (``serving.grpc.quota_reload``): a change is read once it has
held still for a look; a valid one replaces the guard's quotas and each caller keeps what it had left
(capped at its new burst; an unchanged limit keeps its very bucket); a change that does not read or
check is rejected and the limits in force stay; a file that did not change is not read again.
The reloader is driven by its ``check()`` (the watching thread only calls it on a timer), on a clock
that moves only when a test says so."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from serving.errors import QuotaExceeded
from serving.grpc.auth import TokenAuth, fingerprint
from serving.grpc.interceptors import Guard
from serving.grpc.quota_reload import QuotaReloader, stamp
from serving.grpc.quotas import quotas_from_settings
from tests.fakes.dataplane import FakeClock
from tests.fakes.transport import make_settings

TOKENS = "alice:read+write,bob:read+write"
ALICE, BOB = fingerprint("alice"), fingerprint("bob")


def _write(path: Path, tokens: dict[str, Any]) -> None:
    """As a deployment tool writes it: a complete copy renamed over the old one."""
    part = path.with_suffix(".part")
    part.write_text(yaml.safe_dump({"tokens": tokens}), encoding="utf-8")
    os.replace(part, path)


def _reloads(outcome: str) -> float:
    return REGISTRY.get_sample_value("setlist_quota_file_reloads_total", {"outcome": outcome}) or 0.0


def _rejected() -> float | None:
    return REGISTRY.get_sample_value("setlist_quota_file_rejected")


def _serving(path: Path, **settings: Any) -> tuple[Guard, QuotaReloader, FakeClock]:
    """A guard with the quotas a server would build from ``path``, and its reloader."""
    clock = FakeClock()
    config = make_settings(auth_tokens=TOKENS, quota_file=path, **settings)
    auth = TokenAuth.from_settings(config)
    seen = stamp(path)
    guard = Guard(8, auth, quotas=quotas_from_settings(config, auth, clock=clock))
    return guard, QuotaReloader(config, auth, guard, seen, clock=clock), clock


def _settled(reloader: QuotaReloader) -> str:
    """The outcome once a change has held still for a look (the first look after it only notes it)."""
    assert reloader.check() == "settling"
    return reloader.check()


def _spend(guard: Guard, rpc: str, caller: str, times: int) -> int:
    """How many of ``times`` one-unit charges went through before the first refusal."""
    for done in range(times):
        try:
            guard.quotas[rpc].charge(caller)
        except QuotaExceeded:
            return done
    return times


def test_a_valid_change_applies_and_each_caller_keeps_what_it_had_left(tmp_path):
    path = tmp_path / "quotas.yaml"
    _write(path, {"app": {"fingerprint": ALICE, "rank_per_s": 0.001, "rank_burst": 3}})
    guard, reloader, _ = _serving(path, quota_rank_per_s=0.001, quota_rank_burst=1)
    applied = _reloads("applied")
    assert reloader.check() == "unchanged"  # nothing moved since the server read it
    assert _spend(guard, "Rank", ALICE, 2) == 2  # one of her three left

    _write(path, {"app": {"fingerprint": ALICE, "rank_per_s": 0.001, "rank_burst": 10}})
    assert _settled(reloader) == "applied"
    assert _reloads("applied") == applied + 1 and _rejected() == 0
    # a larger burst does not refill her: she still has the one unit she had
    assert _spend(guard, "Rank", ALICE, 5) == 1
    with pytest.raises(QuotaExceeded, match="for token 'app': 0.001 per s, burst 10"):
        guard.quotas["Rank"].charge(ALICE)
    assert _spend(guard, "Rank", BOB, 5) == 1  # bob stays on the default
    assert reloader.check() == "unchanged"


def test_a_smaller_burst_caps_what_is_left_and_a_rate_of_zero_lifts_the_quota(tmp_path):
    path = tmp_path / "quotas.yaml"
    _write(path, {"app": {"fingerprint": ALICE, "rank_per_s": 0.001, "rank_burst": 10}})
    guard, reloader, _ = _serving(path, quota_rank_per_s=0.001, quota_rank_burst=1)
    assert _spend(guard, "Rank", ALICE, 1) == 1  # nine left

    _write(path, {"app": {"fingerprint": ALICE, "rank_per_s": 0.001, "rank_burst": 4}})
    assert _settled(reloader) == "applied"
    assert _spend(guard, "Rank", ALICE, 10) == 4

    _write(path, {"app": {"fingerprint": ALICE, "rank_per_s": 0}})
    assert _settled(reloader) == "applied"
    assert _spend(guard, "Rank", ALICE, 50) == 50


def test_time_keeps_refilling_across_a_reload(tmp_path):
    path = tmp_path / "quotas.yaml"
    _write(path, {"app": {"fingerprint": ALICE, "rank_per_s": 1, "rank_burst": 2}})
    guard, reloader, clock = _serving(path)
    assert _spend(guard, "Rank", ALICE, 5) == 2
    clock.advance(1.0)  # one unit back, then the rate doubles
    _write(path, {"app": {"fingerprint": ALICE, "rank_per_s": 2, "rank_burst": 4}})
    assert _settled(reloader) == "applied"
    assert _spend(guard, "Rank", ALICE, 5) == 1
    clock.advance(1.0)
    assert _spend(guard, "Rank", ALICE, 5) == 2  # at the new rate


def test_the_file_may_limit_an_rpc_that_had_no_quota(tmp_path):
    path = tmp_path / "quotas.yaml"
    _write(path, {})
    guard, reloader, _ = _serving(path)
    assert dict(guard.quotas) == {}
    _write(path, {"importer": {"fingerprint": BOB, "track_per_s": 0.001, "track_burst": 2}})
    assert _settled(reloader) == "applied"
    assert set(guard.quotas) == {"Track"}
    with pytest.raises(QuotaExceeded, match="for token 'importer'"):
        guard.quotas["Track"].charge(BOB, 3)
    guard.quotas["Track"].charge(ALICE, 1000)  # no default Track quota


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: p.write_text("tokens: [unclosed\n"), "cannot read the quota file"),
        (lambda p: _write(p, {"typo": {"fingerprint": fingerprint("nobody"), "rank_per_s": 1}}), "is not one of"),
        (lambda p: _write(p, {"app": {"fingerprint": ALICE, "rank_per_s": -1}}), "must be a number ≥ 0"),
        (lambda p: p.unlink(), "cannot read the quota file"),
    ],
    ids=["not yaml", "unknown token", "negative rate", "deleted"],
)
def test_a_rejected_change_keeps_the_limits_in_force_until_a_valid_one(tmp_path, caplog, change, reason):
    path = tmp_path / "quotas.yaml"
    good = {"app": {"fingerprint": ALICE, "rank_per_s": 0.001, "rank_burst": 2}}
    _write(path, good)
    guard, reloader, _ = _serving(path)
    in_force = guard.quotas
    assert _spend(guard, "Rank", ALICE, 1) == 1
    rejected = _reloads("rejected")

    change(path)
    assert _settled(reloader) == "rejected"
    assert guard.quotas is in_force and _rejected() == 1 and _reloads("rejected") == rejected + 1
    assert any(reason in r.getMessage() and "stay in force" in r.getMessage() for r in caplog.records)
    assert reloader.check() == "unchanged"  # rejected once, not once per look
    assert _spend(guard, "Rank", ALICE, 5) == 1  # the old limits, with what was left

    _write(path, {"app": {"fingerprint": ALICE, "rank_per_s": 0.001, "rank_burst": 5}})
    assert _settled(reloader) == "applied" and _rejected() == 0
    assert _spend(guard, "Rank", ALICE, 10) == 0  # still spent: the valid version carries the count on


def test_the_reloader_and_its_poll_setting_are_checked(tmp_path):
    with pytest.raises(ValueError, match="needs settings.quota_file"):
        QuotaReloader(make_settings(), None, Guard(1), None)
    path = tmp_path / "quotas.yaml"
    _write(path, {})
    _, reloader, _ = _serving(path)
    with pytest.raises(ValueError, match="poll_s must be positive"):
        reloader.start(0)
    with pytest.raises(ValueError):
        make_settings(quota_file_poll_s=-1)


def test_a_file_still_being_written_is_not_applied_half_way(tmp_path):
    path = tmp_path / "quotas.yaml"
    _write(path, {"app": {"fingerprint": ALICE, "rank_per_s": 0.001, "rank_burst": 2}})
    guard, reloader, _ = _serving(path)
    in_force = guard.quotas
    app = {"fingerprint": ALICE, "rank_per_s": 0.001, "rank_burst": 10}
    whole = yaml.safe_dump({"tokens": {"app": app, "b": {"fingerprint": BOB}}})
    with path.open("w", encoding="utf-8") as out:  # written in place, in two pieces
        out.write(whole[:40])  # the first piece alone would be read as something else
        out.flush()
        assert reloader.check() == "settling"
        out.write(whole[40:])
    assert reloader.check() == "settling"  # it grew since the last look: not read yet
    assert guard.quotas is in_force
    assert reloader.check() == "applied"
    assert _spend(guard, "Rank", ALICE, 50) == 10  # her new burst, untouched before


def test_a_permissions_change_alone_counts_as_a_new_version(tmp_path):
    path = tmp_path / "quotas.yaml"
    _write(path, {})
    _, reloader, _ = _serving(path)
    path.chmod(0o600)  # what fixes a file the server could not read: only its change time moves
    assert reloader.check() == "settling" and reloader.check() == "applied"


def test_a_token_whose_limit_did_not_change_keeps_its_bucket_and_late_charges_count(tmp_path):
    path = tmp_path / "quotas.yaml"
    app = {"fingerprint": ALICE, "rank_per_s": 0.001, "rank_burst": 3}
    _write(path, {"app": app})
    guard, reloader, _ = _serving(path, quota_rank_per_s=0.001, quota_rank_burst=2)
    old = guard.quotas["Rank"]  # what a call admitted before the reload still charges
    _write(path, {"app": app, "importer": {"fingerprint": BOB, "rank_per_s": 0.001, "rank_burst": 1}})
    assert _settled(reloader) == "applied"
    old.charge(ALICE)
    old.charge(ALICE)  # late, on the old quota: counted all the same
    assert _spend(guard, "Rank", ALICE, 5) == 1
    assert _spend(guard, "Rank", BOB, 5) == 1  # his limit changed: a bucket of its own


def test_the_watcher_thread_survives_a_failing_look_and_stops(tmp_path, monkeypatch, caplog):
    path = tmp_path / "quotas.yaml"
    _write(path, {})
    _, reloader, _ = _serving(path)
    looked = threading.Semaphore(0)

    def failing() -> str:
        looked.release()
        raise RuntimeError("boom")

    monkeypatch.setattr(reloader, "check", failing)
    reloader.start(0.001)
    assert looked.acquire(timeout=10) and looked.acquire(timeout=10)  # a second look after the failure
    reloader.stop()
    assert any("checking the quota file failed" in r.getMessage() for r in caplog.records)
