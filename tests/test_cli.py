from lmtt.cli import main


def test_trace_command_prints_top_tokens_and_lens(gpt2_folder, capsys):
    assert main(["trace", "--model", str(gpt2_folder), "--device", "cpu", "The cat sat"]) == 0
    out = capsys.readouterr().out
    assert "Top 10 next tokens" in out and "Logit lens" in out
    assert "layer 2" in out and "embed" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_trace_command_reports_errors_cleanly(capsys):
    assert main(["trace", "--model", "no-such-model", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lmtt: error:") and "Traceback" not in err


def test_trace_command_empty_prompt(gpt2_folder, capsys):
    assert main(["trace", "--model", str(gpt2_folder), ""]) == 2
    assert "empty" in capsys.readouterr().err
