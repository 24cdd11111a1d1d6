"""`antiphon bench --answers`: its contract (the two-sample test under "realism" per call set, every measure
two-sided against the real continuations' interval) on a few held-out chorale calls."""
import json

from antiphon.cli import main as antiphon
from antiphon.training import realism


def test_bench_answers_reports_the_two_sample_test_and_two_sided_measures(capsys):
    rc = antiphon(["bench", "--answers", "--quick", "--calls", "bach", "--seeds", "1", "--split", "valid",
                   "--skip", "sender", "train", "prepare", "plan", "--json"])
    assert rc == 0
    out = capsys.readouterr().out
    result = json.loads(out)["answers"]
    entry = result["sets"]["bach"]
    assert entry["calls"] == 4 and result["split"] == "valid"
    assert set(entry["realism"]) >= {"accuracy", "real_vs_real"}
    assert all(0.0 <= entry["realism"][k] <= 1.0 for k in ("accuracy", "real_vs_real", "k1"))
    for config in ("k1", "shipped"):
        measures = entry[config]["measures"]
        assert list(measures) == list(realism.MEASURES)
        for m in measures.values():
            lo, hi = m["real_95"]
            assert lo <= m["real"] <= hi and m["within"] == (lo - 1e-9 <= m["mean"] <= hi + 1e-9)
        assert entry[config]["within"] + len(entry[config]["outside"]) == len(realism.MEASURES)
        assert entry[config]["answered"] == entry[config]["answers"] == 4  # every call answered
