"""Text read as numbers never crashes the process (pandas 2's parser does on some exponents)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd

from setlist.numbers import to_numbers


def test_numbers_read_as_pandas_reads_them_and_huge_exponents_as_none():
    values = ["1", " 2.5 ", "1e3", "-4", "abc", None, "", "77e6725528929c7190e7ca52", "1e2147483648"]
    got = to_numbers(pd.Series(values, dtype=object))
    assert got.iloc[:4].tolist() == [1.0, 2.5, 1000.0, -4.0]
    assert got.iloc[4:].isna().all()
    assert to_numbers(pd.Series(values, dtype="string")).iloc[7:].isna().all()
    assert to_numbers([3, 4.5]).tolist() == [3.0, 4.5]  # numbers stay numbers
    assert np.isnan(to_numbers(pd.Series([np.nan]))).all()


def test_an_import_of_foursquare_venue_ids_does_not_crash(tmp_path):
    # the venue id below crashed the interpreter inside pandas when read as a number
    venues = ["77e6725528929c7190e7ca52", "4b0587eef964a520e7c922e3", "4a43c0aef964a520c6a61fe3"]
    log = tmp_path / "checkins.tsv"
    rows = "".join(f"{k % 4}\t{venues[k % 3]}\tTue Apr 03 18:{k:02d}:09 +0000 2012\n" for k in range(30))
    log.write_text("user\tvenue\ttime\n" + rows)
    pois = tmp_path / "pois.tsv"
    pois.write_text("venue\tlat\tlon\tcategory\tcountry\n" + "".join(f"{v}\t40.7\t-73.9\tCafe\tUS\n" for v in venues))
    script = textwrap.dedent(
        f"""
        from ingest.importer import load_interactions
        events, frame, _ = load_interactions(
            {str(log)!r}, user_col="user", item_col="venue", time_col="time", items={str(pois)!r}, item_id_col="venue"
        )
        print(len(events), sorted(frame["genre"].unique()))
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[0] == "30" and "cafe" in run.stdout
