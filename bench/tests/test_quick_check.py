"""The quick check's regression rule (bench/run.py: `regressed`, `quick_check`)."""

from __future__ import annotations

import io
import json
import sys
import tempfile
import unittest
from contextlib import redirect_stdout
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import run  # noqa: E402  (bench/run.py)

# A committed W2-like comparison: lower is better, the peer's swings spread the ratios.
NOISY = {"median": 0.175, "min": 0.039, "max": 1.42}
# A committed W1-like comparison: higher is better, a tight range.
TIGHT = {"median": 4.45, "min": 3.9, "max": 4.6}


class Regressed(unittest.TestCase):
    def test_lower_is_better_inside_the_committed_range_is_not_a_regression(self):
        # 7x the committed median, but the committed runs measured up to 1.42
        self.assertFalse(run.regressed(1.29, NOISY, "lower"))

    def test_lower_is_better_past_twice_the_median_and_the_range_is_a_regression(self):
        self.assertTrue(run.regressed(1.5, NOISY, "lower"))

    def test_lower_is_better_outside_the_range_but_within_twice_the_median_is_not(self):
        self.assertFalse(run.regressed(0.3, {"median": 0.2, "min": 0.19, "max": 0.21}, "lower"))

    def test_higher_is_better(self):
        self.assertFalse(run.regressed(3.0, TIGHT, "higher"))  # worse, but not 2x
        self.assertTrue(run.regressed(2.0, TIGHT, "higher"))  # below half the median and the range
        self.assertFalse(run.regressed(2.0, {"median": 4.45, "min": 1.9, "max": 4.6}, "higher"))

    def test_a_committed_ratio_without_a_range_compares_with_its_median(self):
        self.assertTrue(run.regressed(0.5, {"median": 0.2}, "lower"))
        self.assertFalse(run.regressed(0.39, {"median": 0.2}, "lower"))


class QuickCheck(unittest.TestCase):
    def check(self, now: float, committed: dict, better: str) -> tuple[int, str]:
        base = {"cases": [{"id": "row", "compare": [{"peer": "peer", "better": better, **committed}]}]}
        cases = [{"id": "row", "state": "run", "compare": [{"peer": "peer", "median": now, "better": better}]}]
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "results.json"
            path.write_text(json.dumps(base))
            out = io.StringIO()
            with redirect_stdout(out):
                status = run.quick_check(cases, path)
        return status, out.getvalue()

    def test_passes_and_prints_the_committed_range(self):
        status, out = self.check(1.29, NOISY, "lower")
        self.assertEqual(status, 0)
        self.assertIn("[0.039–1.42] committed: ok", out)

    def test_fails_on_a_regression(self):
        status, out = self.check(2.0, TIGHT, "higher")
        self.assertEqual(status, 1)
        self.assertIn("REGRESSION", out)


if __name__ == "__main__":
    unittest.main()
