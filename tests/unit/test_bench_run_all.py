"""bench/run_all.py: which scripts it runs, in what order, and that one failure fails the run without stopping it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

RUN_ALL = Path(__file__).resolve().parents[2] / "bench" / "run_all.py"


def load_run_all() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run_all", RUN_ALL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_given_the_bench_folder_when_listed_then_every_script_but_helpers_and_itself_in_name_order() -> None:
    run_all = load_run_all()

    names = [path.name for path in run_all.scripts()]

    assert names == sorted(names)
    assert "chain.py" in names
    assert [name for name in names if name.startswith("_") or name == "run_all.py"] == []


def test_given_a_failing_script_when_all_run_then_the_rest_still_run_and_the_run_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    run_all = load_run_all()
    (tmp_path / "b_fails.py").write_text("print('b ran')\nraise SystemExit(3)\n")
    (tmp_path / "a_works.py").write_text("print('a ran')\n")
    (tmp_path / "c_works.py").write_text("print('c ran')\n")
    (tmp_path / "_helper.py").write_text("raise SystemExit('a helper must not run')\n")
    (tmp_path / "run_all.py").write_text("raise SystemExit('run_all must not run itself')\n")
    monkeypatch.setattr(run_all, "BENCH", tmp_path)
    monkeypatch.setattr(sys, "argv", ["run_all.py"])

    status = run_all.main()

    out, err = capfd.readouterr()
    assert status == 1
    assert [line for line in out.splitlines() if line.endswith(" ran")] == ["a ran", "b ran", "c ran"]
    assert "== b_fails.py: exit 3" in out
    assert err.strip().endswith("failed: b_fails.py")


def test_given_names_when_run_then_only_those_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    run_all = load_run_all()
    (tmp_path / "a_works.py").write_text("print('a ran')\n")
    (tmp_path / "b_works.py").write_text("print('b ran')\n")
    monkeypatch.setattr(run_all, "BENCH", tmp_path)
    monkeypatch.setattr(sys, "argv", ["run_all.py", "b_works"])

    status = run_all.main()

    out, _ = capfd.readouterr()
    assert (status, [line for line in out.splitlines() if line.endswith(" ran")]) == (0, ["b ran"])
