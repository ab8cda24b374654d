"""A resumed training's record adds up its legs: wall time summed, peak the largest leg's."""
import json
import sys

from fairseq_mgcm.recipe.peak_memory import run_with_peak_memory

SLEEP_AND_ALLOCATE = "import time; x = bytearray({mb} * 2**20); time.sleep({s})"


def test_each_leg_adds_its_wall_time_and_the_peak_is_the_largest_leg(tmp_path):
    record = tmp_path / "train_peak.json"
    assert run_with_peak_memory([sys.executable, "-c", SLEEP_AND_ALLOCATE.format(mb=2000, s=0.2)],
                                record) == 0
    first = json.loads(record.read_text())
    assert len(first["legs"]) == 1 and first["peak_rss_mb"] >= 2000

    assert run_with_peak_memory([sys.executable, "-c", SLEEP_AND_ALLOCATE.format(mb=1, s=0.6)],
                                record) == 0
    both = json.loads(record.read_text())
    assert len(both["legs"]) == 2
    assert both["wall_s"] == round(sum(leg["wall_s"] for leg in both["legs"]), 1)
    assert both["wall_s"] >= 0.8
    assert both["peak_rss_mb"] == first["peak_rss_mb"]  # the first leg's peak, not the last's
    # each leg's own peak: the 1 MB leg does not inherit the 2,000 MB leg's (a child's peak
    # does include its parent's size at the fork: this test session's, well below 2,000 MB)
    assert both["legs"][1]["peak_rss_mb"] < 2000 <= first["peak_rss_mb"]
    assert both["cpu_s"] == round(sum(leg["cpu_s"] for leg in both["legs"]), 1)


def test_cpu_time_counts_work_not_waiting(tmp_path):
    record = tmp_path / "train_peak.json"
    spin = "import time; t = time.process_time()\nwhile time.process_time() - t < 0.5: pass"
    run_with_peak_memory([sys.executable, "-c", spin + "\ntime.sleep(0.5)"], record)
    leg = json.loads(record.read_text())["legs"][0]
    assert 0.5 <= leg["cpu_s"] < leg["wall_s"]
    assert not list(tmp_path.glob("*.tmp"))


def test_a_record_from_before_legs_counts_as_one_leg(tmp_path):
    record = tmp_path / "train_peak.json"
    record.write_text(json.dumps({"peak_rss_mb": 5000.0, "wall_s": 100.0, "returncode": 0}))
    run_with_peak_memory([sys.executable, "-c", "pass"], record)
    result = json.loads(record.read_text())
    assert len(result["legs"]) == 2
    assert result["peak_rss_mb"] == 5000.0 and result["wall_s"] >= 100.0
