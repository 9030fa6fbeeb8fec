"""Search text: one normal form, and raw text never stored without analytics consent."""

from __future__ import annotations

from setlist.querytext import MAX_TERMS, is_hashed, normalize, stored, terms

KEY = b"k" * 32


def test_normalization_folds_case_width_and_punctuation():
    assert terms("  Daft_Punk -- ROCK!! rock ") == ["daft", "punk", "rock"]
    assert normalize("Ｊａｚｚ") == "jazz"  # full-width letters (NFKC)
    assert normalize("Straße") == "strasse"  # case folding, not just lower()
    assert normalize("¡¿…!") == "" and terms(None) == []
    assert len(terms(" ".join(f"w{i}" for i in range(100)))) == MAX_TERMS


def test_text_is_stored_normalized_only_with_explicit_analytics_consent():
    assert stored("Miles DAVIS", True, KEY) == "miles davis"
    for consent in (False, None):  # unknown consent fails closed
        kept = stored("Miles DAVIS jane.doe@example.com", consent, KEY)
        assert kept is not None and "miles" not in kept and "jane" not in kept
        assert all(is_hashed(t) for t in kept.split())
    # the same term hashes the same way (repeats still match), under another key differently
    assert stored("miles", False, KEY) == stored("MILES!", None, KEY) != stored("miles", False, b"x" * 32)
    assert stored("   ", True, KEY) is None
