"""``--policies``: each policy with the values of its latency knob, checked before any run."""
from __future__ import annotations

import pytest

from fairseq_mgcm.agents.sweep_points import SweepPoint, sweep_points
from fairseq_mgcm.errors import BadValue


def test_specs_become_points_with_their_flags_folders_and_labels() -> None:
    points = sweep_points(["waitk", "alignatt:2,4", "edatt:0.4", "local-agreement:3"], [1, 5])
    assert points == [SweepPoint("waitk", 1), SweepPoint("waitk", 5), SweepPoint("alignatt", 2),
                      SweepPoint("alignatt", 4), SweepPoint("edatt", 0.4),
                      SweepPoint("local-agreement", 3)]
    assert [p.folder for p in points] == ["k1", "k5", "alignatt_f2", "alignatt_f4",
                                          "edatt_a0.4", "local-agreement_n3"]
    assert points[0].agent_flags() == ["--waitk", "1"]  # as before policies existed
    assert points[2].agent_flags() == ["--policy", "alignatt", "--alignatt-frames", "2"]
    assert points[4].agent_flags() == ["--policy", "edatt", "--edatt-alpha", "0.4"]
    assert points[5].label == "local-agreement n=3"
    assert sweep_points(["waitk:2,7"], None) == [SweepPoint("waitk", 2), SweepPoint("waitk", 7)]


@pytest.mark.parametrize("specs,k,message", [
    (["wait-if-diff"], None, "unknown policy 'wait-if-diff'"),
    (["alignatt"], None, "give alignatt's f values"),
    (["waitk"], None, "give the wait-k values with --k"),
    (["alignatt:2,x"], None, "'x' is not an integer"),
    (["edatt:high"], None, "'high' is not a number"),
    (["edatt:1.5"], None, "--edatt-alpha 1.5: must be in"),
    (["alignatt:0"], None, "--alignatt-frames 0: must be >= 1"),
    (["local-agreement:1"], None, "--la-agreement 1: local agreement compares at least 2"),
    (["waitk:0"], None, "k 0 must be >= 1"),
    (["alignatt:2", "alignatt:2"], None, "alignatt f=2 is given twice"),
])
def test_bad_specs_are_refused_naming_them(specs, k, message) -> None:
    with pytest.raises(BadValue, match=f"^--policies .*{message}"):
        sweep_points(specs, k)
