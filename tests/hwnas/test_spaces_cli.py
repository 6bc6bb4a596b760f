"""``hwnas spaces``: the MACs/params ranges are counted once and kept, so listing is fast."""

from __future__ import annotations

import json

import pytest

from hwnas.cli import main, spaces_cmd


def test_listing_uses_the_kept_ranges_and_counts_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HWNAS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(spaces_cmd, "count_range", lambda *a: pytest.fail("counted MACs"))
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    assert "fbnetv2:tiny" in out and "0.08-2.94" in out and "counted once and kept" in out


def test_refresh_recounts_into_the_user_cache(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HWNAS_CACHE_DIR", str(tmp_path))
    calls = []
    real = spaces_cmd.count_range

    def counting(space, *args):
        calls.append(space.key)
        return real(space, *args)

    monkeypatch.setattr(spaces_cmd, "count_range", counting)
    assert main(["spaces", "--range-samples", "2", "--refresh"]) == 0
    assert sorted(calls) == sorted(["darts", "fbnet", "fbnetv2:tiny", "nao", "nb201"])
    kept = json.loads((tmp_path / "cost_ranges.json").read_text())
    assert "nb201|input=32|n=2|seed=0" in kept
    calls.clear()
    assert main(["spaces", "--range-samples", "2"]) == 0  # now kept: nothing counted
    assert calls == []
    capsys.readouterr()


def test_a_damaged_user_cache_is_recounted_not_trusted(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HWNAS_CACHE_DIR", str(tmp_path))
    (tmp_path / "cost_ranges.json").write_text("{not json")
    assert main(["spaces", "--range-samples", "2"]) == 0
    assert json.loads((tmp_path / "cost_ranges.json").read_text())  # rewritten whole
    capsys.readouterr()
