"""The `dwc` command line as users run it: exit codes, diagnostics, atomic outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dwc.cli import main
from tests.conftest import ROOT

DW_MLP = str(ROOT / "examples" / "dw_mlp.dw")
BROKEN = "model m\nfeature a : categorical(vocab = 10, dim = 4)\nh = linear(b, 4)\n"


def run(*args):
    return subprocess.run([sys.executable, "-m", "dwc", *args], capture_output=True, text=True,
                          cwd=ROOT)


def test_compile_writes_model_py(tmp_path):
    out = tmp_path / "out"
    assert main(["compile", DW_MLP, "--target", "torch", "-o", str(out)]) == 0
    assert (out / "model.py").read_text().startswith('"""DwMlp')
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.py", "spec.dw"]


def test_generated_model_runs_as_a_script(tmp_path):
    assert main(["compile", DW_MLP, "-o", str(tmp_path)]) == 0
    proc = subprocess.run([sys.executable, str(tmp_path / "model.py")], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert "train step 2" in proc.stdout


def test_failed_compile_leaves_output_untouched(tmp_path):
    spec = tmp_path / "broken.dw"
    spec.write_text(BROKEN)
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.py").write_text("previous good artifact")
    assert main(["compile", str(spec), "-o", str(out)]) == 1
    assert (out / "model.py").read_text() == "previous good artifact"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.dw", "out"]


def test_failed_compile_creates_no_directory(tmp_path):
    spec = tmp_path / "broken.dw"
    spec.write_text(BROKEN)
    assert main(["compile", str(spec), "-o", str(tmp_path / "new")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.dw"]


def test_spec_error_renders_rustc_style_without_traceback(tmp_path):
    spec = tmp_path / "broken.dw"
    spec.write_text(BROKEN)
    proc = run("check", str(spec))
    assert proc.returncode == 1
    assert "error[DW201]: unknown name 'b'" in proc.stderr
    assert f"--> {spec}:3:12" in proc.stderr
    assert "3 | h = linear(b, 4)" in proc.stderr
    assert "^ not defined" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_check_json_format(tmp_path, capsys):
    spec = tmp_path / "broken.dw"
    spec.write_text(BROKEN)
    assert main(["check", str(spec), "--format", "json"]) == 1
    (diag,) = json.loads(capsys.readouterr().out)
    assert diag["code"] == "DW201" and (diag["line"], diag["column"]) == (3, 12)
    assert set(diag) >= {"code", "severity", "message", "file", "line", "column", "end_line",
                         "end_column", "help"}


def test_missing_file_is_exit_2_with_diagnostic(capsys):
    assert main(["check", "no/such/file.dw"]) == 2
    err = capsys.readouterr().err
    assert "error[DW401]: cannot read 'no/such/file.dw'" in err


def test_unwritable_output_is_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["compile", DW_MLP, "-o", str(blocker / "sub")]) == 2
    assert "DW402" in capsys.readouterr().err


def test_unknown_target_is_exit_2(capsys):
    assert main(["compile", DW_MLP, "--target", "tflite"]) == 2
    assert "DW404" in capsys.readouterr().err


def test_usage_error_is_exit_2():
    proc = run("compile")
    assert proc.returncode == 2
    assert "usage:" in proc.stderr and "Traceback" not in proc.stderr


def test_internal_error_is_reported_as_such(monkeypatch, capsys):
    import dwc.driver

    def boom(*args, **kwargs):
        raise RuntimeError("kaboom \x1b[2J")  # a message may quote bytes of the user's files

    monkeypatch.setattr(dwc.driver, "check_source", boom)
    monkeypatch.delenv("DWC_DEBUG", raising=False)
    assert main(["check", DW_MLP]) == 2
    err = capsys.readouterr().err
    assert "error[DW900]: internal error: RuntimeError: kaboom \\x1b[2J" in err
    assert "Traceback" not in err and "\x1b" not in err


def test_fmt_check_and_rewrite(tmp_path, capsys):
    spec = tmp_path / "m.dw"
    spec.write_text("model m\nx=f(a)\n")
    assert main(["fmt", "--check", str(spec)]) == 1
    assert "DW403" in capsys.readouterr().err
    assert main(["fmt", str(spec)]) == 0
    assert spec.read_text() == "model m\nx = f(a)\n"
    assert main(["fmt", "--check", str(spec)]) == 0


def test_explain_json_totals(capsys):
    assert main(["explain", DW_MLP, "--format", "json", "--batch", "4096"]) == 0
    report = json.loads(capsys.readouterr().out)
    h = next(layer for layer in report["layers"] if layer["name"] == "h")
    assert h["training"]["generated_per_sample"] == 664
    assert report["batch"] == 4096
    for form in ("training", "inference"):
        assert report["total"][form]["params"] == sum(
            layer[form]["params"] for layer in report["layers"])
    assert report["passes"][0]["pass"] == "lowered"


def test_explain_table_lists_layers(capsys):
    assert main(["explain", DW_MLP]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["layer", "ops", "params"]
    assert any(line.startswith("h ") and "664" in line for line in out.splitlines())


def test_version():
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("dwc ")


@pytest.mark.parametrize("args", [["compile", DW_MLP, "--dump-ir", "-o", "{tmp}"]])
def test_dump_ir(tmp_path, capsys, args):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 0
    out = capsys.readouterr().out
    assert "%h.generated: vec[664] = generator(%z)" in out
    assert os.path.exists(tmp_path / "model.py")


APG = str(ROOT / "examples" / "apg.dw")


def test_bad_pipeline_is_a_usage_error(tmp_path, capsys):
    assert main(["compile", APG, "--passes", "lowrank{k=2}", "-o", str(tmp_path / "o")]) == 2
    assert "pass 'lowrank' has no option 'k'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["verify", DW_MLP, "--batches=-1"], "--batches must lie in 1 .. --max-batch (8192), got -1"),
    (["verify", DW_MLP, "--batches", "1,0"], "--batches must lie in 1 .. --max-batch"),
    (["verify", DW_MLP, "--batches", "100000000"], "got 100000000"),
    (["verify", DW_MLP, "--targets", ","], "--targets names no target (choose from torch, "),
    (["verify", DW_MLP, "--tolerance", "nan"], "--tolerance must be a finite number >= 0, got nan"),
    (["verify", DW_MLP, "--tolerance", "-1"], "--tolerance must be a finite number >= 0, got -1"),
    (["verify", DW_MLP, "--max-batch", "0", "--batches", "1"], "--max-batch must be at least 1"),
    (["verify", DW_MLP, "--print-after", "bogus"], "--print-after: unknown pass 'bogus' (passes: "),
    (["compile", DW_MLP, "--weights", "state.pt"], "--weights applies to the artifact targets"),
    (["compile", DW_MLP, "--print-after", "bogus"], "--print-after: unknown pass 'bogus' (passes: "),
    (["explain", DW_MLP, "--passes", "lowrank{rank=-1}"],
     "option 'rank' of pass 'lowrank' must be 0 or more, got -1"),
    (["train", DW_MLP, "--data", "x.npz", "--out", "run", "--epochs", "0"],
     "--epochs must be at least 1"),
])
def test_options_outside_what_they_accept_are_dw413(tmp_path, monkeypatch, capsys, args,
                                                    message):
    """Each a coded usage error with a hint before any work (some were internal errors, a
    verify that ran for minutes, or --weights ignored), and no output written."""
    monkeypatch.chdir(tmp_path)
    assert main([*args, *(["-o", "out"] if args[0] == "compile" else [])]) == 2
    err = capsys.readouterr().err
    assert "error[DW413]" in err and message in err, err
    assert f"= help: `dwc {args[0]} --help` lists the options" in err
    assert list(tmp_path.iterdir()) == []


def test_a_seed_outside_what_torch_takes_is_a_usage_error(tmp_path):
    for seed in ("-1", "99999999999999999999999"):
        proc = run("data", "generate", str(tmp_path / "x.npz"), "--seed", seed)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert f"argument --seed: {seed} is outside 0 .. 2**63 - 1" in proc.stderr


def test_print_after_a_pass_outside_the_pipeline_says_so(tmp_path, capsys):
    assert main(["compile", DW_MLP, "-O0", "-o", str(tmp_path / "o"),
                 "--print-after", "fold-star"]) == 0
    assert "--print-after fold-star: that pass is not in this pipeline" in capsys.readouterr().err


def test_print_after_and_time_passes(tmp_path, capsys):
    assert main(["compile", APG, "-o", str(tmp_path), "--print-after", "share", "--time-passes",
                 "--verify-each"]) == 0
    err = capsys.readouterr().err
    assert "// IR after share (model)" in err
    assert "lowrank_dynamic_linear" in err.split("// IR after share")[1]
    assert "fold-scenario-table" in err and "total" in err


def test_verify_prints_and_times_its_pipeline_once(capsys):
    """verify compiles once per target through the same pipeline: --print-after and
    --time-passes (ignored before) report it once, not once per target."""
    assert main(["verify", APG, "--targets", "torch,onnx", "--batches", "2",
                 "--print-after", "share", "--time-passes", "--verify-each"]) == 0
    err = capsys.readouterr().err
    assert err.count("// IR after share (model)") == 1
    assert err.count("fold-scenario-table") == 1 and "total" in err


def test_explicit_passes_replace_the_optimisation_pipeline(tmp_path, capsys):
    assert main(["compile", APG, "-o", str(tmp_path), "--passes", "decompose,dce",
                 "--dump-ir"]) == 0
    out = capsys.readouterr().out
    assert "scenario_table" not in out and "decompose=true" in out


def test_passes_command_lists_every_pass(capsys):
    from dwc.passes import PASSES

    assert main(["passes"]) == 0
    out = capsys.readouterr().out
    for name in PASSES:
        assert name in out
    assert "-O2:" in out
    # in the order they run: the -O2 pipeline's passes appear in its order
    from dwc.passes.base import PIPELINES

    listed = [line.split()[0] for line in out.splitlines()[:len(PASSES)]]
    pipeline = [p for p in dict.fromkeys(PIPELINES[2].split(",")) if p != "dce"]
    assert [p for p in listed if p in pipeline] == pipeline


def test_compiling_to_torch_never_imports_torch(tmp_path):
    code = ("import sys\nfrom dwc.cli import main\n"
            "assert main(['compile', sys.argv[1], '-o', sys.argv[2]]) == 0\n"
            "assert 'torch' not in sys.modules, 'the torch target imported torch'\n")
    proc = subprocess.run([sys.executable, "-c", code, APG, str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_check_accepts_several_files(tmp_path, capsys):
    broken = tmp_path / "broken.dw"
    broken.write_text(BROKEN)
    star = str(ROOT / "examples" / "star.dw")
    assert main(["check", DW_MLP, star]) == 0
    err = capsys.readouterr().err
    assert f"{DW_MLP}: ok (model dw_mlp)" in err and f"{star}: ok (model star)" in err
    # every file is checked; the worst status wins (1 for spec errors, 2 for an unreadable file)
    assert main(["check", str(broken), DW_MLP]) == 1
    assert f"{DW_MLP}: ok" in capsys.readouterr().err
    assert main(["check", DW_MLP, str(tmp_path / "missing.dw"), str(broken)]) == 2
    err = capsys.readouterr().err
    assert "DW401" in err and "DW201" in err and f"{DW_MLP}: ok" in err
    assert main(["check", "--format", "json", str(broken), DW_MLP, str(broken)]) == 1
    findings = json.loads(capsys.readouterr().out)
    assert [d["code"] for d in findings] == ["DW201", "DW201"]


@pytest.mark.parametrize("text", ["", "# only a comment\n\n"])
def test_fmt_of_a_spec_without_a_model_is_dw204(text, tmp_path, capsys):
    spec = tmp_path / "empty.dw"
    spec.write_text(text)
    for args in (["fmt", str(spec)], ["fmt", "--check", str(spec)], ["check", str(spec)]):
        assert main(args) == 1
        assert "error[DW204]: the spec has no 'model' declaration" in capsys.readouterr().err
    assert spec.read_text() == text


@pytest.mark.parametrize("command", [["passes"], ["explain", "--format", "json", DW_MLP],
                                     ["explain", DW_MLP], ["compile", DW_MLP, "--dump-ir", "-o"]])
def test_a_closed_pipe_ends_quietly(command, tmp_path):
    """`dwc explain --format json | head -c 10`: the reader goes away after a few bytes."""
    if command[-1] == "-o":
        command = [*command, str(tmp_path / "out")]
    reader = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.buffer.read(10)"],
                              stdin=subprocess.PIPE)
    # a small pipe buffer is not guaranteed: write the output many times to outgrow it
    proc = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom dwc.cli import main\n"
         "for _ in range(200):\n    status = main(sys.argv[1:])\n    if status: break\n"
         "sys.exit(status)", *command],
        stdout=reader.stdin, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=300)
    reader.stdin.close()
    reader.wait(timeout=30)
    assert proc.returncode == 141, proc.stderr  # the pipe did close: 200 outputs outgrow it
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
    assert "DW900" not in proc.stderr and "Exception ignored" not in proc.stderr


def test_missing_export_package_names_an_install_that_works_from_a_checkout(
        monkeypatch, tmp_path, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnx" else real(name, *a))
    assert main(["compile", DW_MLP, "--target", "onnx", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "error[DW408]: the 'onnx' package is needed for this target" in err
    assert "pip install -e '.[export]'" in err
    assert not (tmp_path / "o").exists()


def test_a_broken_pipe_other_than_stdout_is_an_internal_error(monkeypatch, capsys):
    import dwc.cli

    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")  # e.g. a subprocess the command talks to

    monkeypatch.setitem(dwc.cli.COMMANDS, "passes", broken)
    assert main(["passes"]) == 2
    assert "error[DW900]: internal error: BrokenPipeError" in capsys.readouterr().err


def test_control_characters_are_escaped_in_diagnostics():
    """A message quoting bytes of a binary file (pyarrow's CSV errors do) must not reach the
    terminal raw: control characters become \\xNN escapes; in a source line each is one `?`, so
    the carets still line up."""
    from dwc.diagnostics import Diagnostic, Label, render_text
    from dwc.source import SourceFile, Span

    source = SourceFile("s.dw", "model m\x07\x1b[2J\n")
    shown = render_text(Diagnostic.file_level("DW610", "got \x1b[31mred\x00", help="x\x9b"),
                        source)
    assert shown.splitlines()[0] == "error[DW610]: got \\x1b[31mred\\x00"
    assert "= help: x\\x9b" in shown and "\x1b" not in shown
    located = Diagnostic("DW201", "here", Label(Span(8, 9), "bell"))
    lines = render_text(located, source).splitlines()
    row = lines.index("1 | model m??[2J")
    assert lines[row + 1].index("^") == lines[row].index("??") + 1  # under the escape's `?`


@pytest.mark.parametrize("command", ["explain", "lint"])
def test_a_batch_beyond_any_real_one_is_refused(command, capsys):
    """explain printed activation memory in the quintillions of GiB for --batch 10**24."""
    assert main([command, DW_MLP, "--batch", str(10**24)]) == 2
    assert f"--batch must lie in 1 .. 2,147,483,647, got {10**24:,}\n" in capsys.readouterr().err
