"""Per-token quota overrides (``SETLIST_QUOTA_FILE``): how an entry's limits resolve against the
defaults, every way a file can be wrong (one clear error, checked at start-up), the buckets each
caller then draws from, and the command that prints the fingerprints a file names tokens by."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from serving.__main__ import StartupError, _check_auth_and_quotas, app
from serving.errors import QuotaExceeded
from serving.grpc.auth import TokenAuth, fingerprint
from serving.grpc.quota_file import Limit, load, parse
from serving.grpc.quotas import Quota, quotas_from_settings
from setlist.errors import UsageError
from setlist.settings import get_settings
from tests.fakes.dataplane import FakeClock
from tests.fakes.transport import make_settings

ROOT = Path(__file__).resolve().parents[2]
ALICE, BOB, CAROL = fingerprint("alice"), fingerprint("bob"), fingerprint("carol")
TOKENS = "alice:read+write,bob:read+write,carol:read"
DEFAULTS: dict[str, Limit | None] = {"Rank": Limit(10.0, 20), "Track": None}


def _entry(**limits: object) -> dict[str, object]:
    return {"tokens": {"app": {"fingerprint": ALICE, **limits}}}


def _limits(**limits: object) -> dict[str, Limit | None]:
    (only,) = parse(_entry(**limits), {ALICE}, DEFAULTS)
    return dict(only.limits)


def test_an_entry_resolves_each_rpc_against_the_defaults():
    assert _limits() == {}  # nothing set: the defaults apply
    assert _limits(rank_per_s=100) == {"Rank": Limit(100.0, 100)}  # a rate alone: one second's worth
    assert _limits(rank_per_s=2.5, rank_burst=7) == {"Rank": Limit(2.5, 7)}
    assert _limits(rank_burst=50) == {"Rank": Limit(10.0, 50)}  # a burst alone: the default rate
    assert _limits(rank_per_s=0) == {"Rank": None}  # 0 lifts the quota for this token
    assert _limits(track_per_s=1000) == {"Track": Limit(1000.0, 1000)}  # even where the default has none


def test_the_fingerprint_is_read_case_insensitively_and_no_file_means_no_overrides():
    (only,) = parse({"tokens": {"app": {"fingerprint": ALICE.upper(), "rank_per_s": 1}}}, {ALICE}, DEFAULTS)
    assert (only.name, only.fingerprint) == ("app", ALICE)
    assert load(None, {ALICE}, DEFAULTS) == []
    assert parse(None, set(), DEFAULTS) == [] and parse({"tokens": {}}, set(), DEFAULTS) == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["tokens"], "expected a mapping with one key, tokens"),
        ({"token": {}}, "expected a mapping with one key, tokens"),
        ({"tokens": ["app"]}, "tokens must map a name"),
        ({"tokens": {"app": 5}}, "tokens.app: expected a mapping"),
        (_entry(rank_rate=5), "unknown keys ['rank_rate']"),
        ({"tokens": {"app": {"rank_per_s": 5}}}, "fingerprint must be 16 hex digits"),
        ({"tokens": {"app": {"fingerprint": "alice"}}}, "fingerprint must be 16 hex digits"),
        # what YAML makes of an unquoted 0000000000001234: the leading zeros are gone
        ({"tokens": {"app": {"fingerprint": 1234}}}, "fingerprint reads as the number 1234: quote it"),
        ({"tokens": {"app": {"fingerprint": fingerprint("mallory")}}}, "is not one of SETLIST_AUTH_TOKENS' tokens"),
        (_entry(rank_per_s=-1), "rank_per_s must be a number ≥ 0, got -1"),
        (_entry(rank_per_s="fast"), "rank_per_s must be a number ≥ 0"),
        (_entry(rank_per_s=True), "rank_per_s must be a number ≥ 0"),
        (_entry(rank_per_s=float("inf")), "rank_per_s must be a number ≥ 0"),
        (_entry(rank_burst=2.5), "rank_burst must be a whole number"),
        (_entry(track_burst=10), "track_burst without a rate, and SETLIST_QUOTA_TRACK_PER_S is not set"),
        (
            {"tokens": {"a": {"fingerprint": ALICE}, "b": {"fingerprint": ALICE}}},
            f"fingerprint {ALICE} is also tokens.a's",
        ),
    ],
)
def test_a_bad_file_is_one_error_naming_what_to_fix(raw, message):
    with pytest.raises(UsageError) as err:
        parse(raw, {ALICE, BOB}, DEFAULTS, "quotas.yaml")
    assert str(err.value).startswith("quotas.yaml") and message in str(err.value)


def test_overrides_need_auth_and_a_readable_file(tmp_path):
    with pytest.raises(UsageError, match="per-token quotas need SETLIST_AUTH_TOKENS"):
        parse(_entry(rank_per_s=1), set(), DEFAULTS)
    with pytest.raises(UsageError, match="cannot read the quota file"):
        load(tmp_path / "absent.yaml", {ALICE}, DEFAULTS)
    bad = tmp_path / "bad.yaml"
    bad.write_text("tokens: [unclosed\n")
    with pytest.raises(UsageError, match="cannot read the quota file"):
        load(bad, {ALICE}, DEFAULTS)


def test_the_shipped_example_parses():
    raw = yaml.safe_load((ROOT / "deploy" / "quotas.example.yaml").read_text())
    known = {e["fingerprint"] for e in raw["tokens"].values()}
    entries = {t.name: dict(t.limits) for t in parse(raw, known, DEFAULTS)}
    assert entries["mobile-app"] == {"Rank": Limit(500.0, 1000)}
    assert entries["dashboards"] == {"Rank": None}


# --- the buckets each caller draws from -------------------------------------------------------
def test_a_token_with_limits_of_its_own_draws_from_its_own_bucket_and_is_named():
    quota = Quota("Rank", 1, 1, clock=FakeClock(), own=[(ALICE, "mobile-app", Limit(1, 3)), (CAROL, "dash", None)])
    for _ in range(3):
        quota.charge(ALICE)
    with pytest.raises(QuotaExceeded) as refused:
        quota.charge(ALICE)
    assert str(refused.value).startswith("quota for Rank exceeded for token 'mobile-app': 1 per s, burst 3;")
    quota.charge(BOB)  # the default: a burst of one
    with pytest.raises(QuotaExceeded, match="exceeded for this token: 1 per s, burst 1"):
        quota.charge(BOB)
    for _ in range(100):
        quota.charge(CAROL)  # lifted


def test_settings_and_file_together(tmp_path):
    path = tmp_path / "quotas.yaml"
    path.write_text(yaml.safe_dump({"tokens": {"importer": {"fingerprint": BOB, "track_per_s": 5, "track_burst": 2}}}))
    auth = TokenAuth(TOKENS)
    # no default Track quota: only the token the file names is limited
    quotas = quotas_from_settings(make_settings(quota_file=path), auth, clock=FakeClock())
    assert set(quotas) == {"Track"} and quotas["Track"].burst is None
    quotas["Track"].charge(ALICE, 1000)  # no limit for alice
    quotas["Track"].charge(BOB, 2)
    with pytest.raises(QuotaExceeded, match="for token 'importer': 5 events per s, burst 2"):
        quotas["Track"].charge(BOB, 1)


def test_startup_checks_the_tokens_and_the_file_in_one_line(tmp_path):
    path = tmp_path / "quotas.yaml"
    path.write_text(yaml.safe_dump({"tokens": {"typo": {"fingerprint": fingerprint("nobody"), "rank_per_s": 1}}}))
    with pytest.raises(StartupError, match="tokens.typo: fingerprint .* is not one of"):
        _check_auth_and_quotas(make_settings(auth_tokens=TOKENS, quota_file=path))
    with pytest.raises(StartupError, match="auth_tokens entry 1 must look like"):
        _check_auth_and_quotas(make_settings(auth_tokens="no-scope"))
    # the settings object refuses a negative rate; the server checks again what reaches it otherwise
    with pytest.raises(StartupError, match="must not be negative"):
        _check_auth_and_quotas(make_settings().model_copy(update={"quota_rank_per_s": -2}))
    path.write_text(yaml.safe_dump({"tokens": {"ok": {"fingerprint": CAROL, "rank_per_s": 1}}}))
    _check_auth_and_quotas(make_settings(auth_tokens=TOKENS, quota_file=path))


def test_the_fingerprints_command_prints_each_entrys_and_stdins(monkeypatch):
    runner = CliRunner()
    monkeypatch.setenv("SETLIST_AUTH_TOKENS", TOKENS)
    listed = runner.invoke(app, ["token-fingerprints"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert [line.split()[-1] for line in lines] == [ALICE, BOB, CAROL]
    assert lines[2].split()[:3] == ["entry", "3", "read"]
    assert "alice" not in listed.output  # never the secret
    piped = runner.invoke(app, ["token-fingerprints", "--stdin"], input="alice\n\nbob\n")
    assert piped.exit_code == 0 and piped.output.split() == [ALICE, BOB]
    monkeypatch.delenv("SETLIST_AUTH_TOKENS")
    get_settings.cache_clear()
    empty = runner.invoke(app, ["token-fingerprints"])
    assert empty.exit_code == 2 and "SETLIST_AUTH_TOKENS is not set" in empty.output


def test_check_quotas_prints_each_tokens_limits_or_the_reason_it_is_invalid(monkeypatch, tmp_path):
    runner = CliRunner()
    monkeypatch.setenv("SETLIST_AUTH_TOKENS", TOKENS)
    monkeypatch.setenv("SETLIST_QUOTA_RANK_PER_S", "10")
    get_settings.cache_clear()
    path = tmp_path / "quotas.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "tokens": {
                    "mobile": {"fingerprint": ALICE, "rank_burst": 40},
                    "dash": {"fingerprint": CAROL, "rank_per_s": 0, "track_per_s": 5},
                    "plain": {"fingerprint": BOB},
                }
            },
            sort_keys=False,
        )
    )
    valid = runner.invoke(app, ["check-quotas", str(path)])
    assert valid.exit_code == 0, valid.output
    assert valid.output.splitlines() == [
        f"{path}: valid, 3 token(s) with limits of their own",
        f"  mobile ({ALICE}): Rank 10/s burst 40",
        f"  dash ({CAROL}): Rank no quota, Track 5/s burst 5",
        f"  plain ({BOB}): the defaults",
    ]
    path.write_text(yaml.safe_dump({"tokens": {"typo": {"fingerprint": fingerprint("nobody")}}}))
    monkeypatch.setenv("SETLIST_QUOTA_FILE", str(path))  # no argument: the configured file
    get_settings.cache_clear()
    invalid = runner.invoke(app, ["check-quotas"])
    assert invalid.exit_code == 1 and "invalid:" in invalid.output and "tokens.typo" in invalid.output
    monkeypatch.delenv("SETLIST_QUOTA_FILE")
    get_settings.cache_clear()
    missing = runner.invoke(app, ["check-quotas"])
    assert missing.exit_code == 2 and "no quota file" in missing.output
    get_settings.cache_clear()
