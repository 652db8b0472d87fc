"""Jobs under faults: a lock per output folder, a changed corpus on resume, a full or read-only
disk, outputs checked before any work, and nothing partial left behind."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lmtt.cli import main
from lmtt.errors import ContextIndexError, LmttError
from lmtt.index.jobs import LOCK, CorpusChangedError, FolderBusyError, FolderLock, fresh_output
from lmtt.index.neuron_index import IndexSettings, index_neurons

TEXT = "\n\n".join(
    f"Paragraph {i}: the quick brown fox jumps over the lazy dog." for i in range(16)
)
READ_ONLY = Path("/sys/lmtt-test-output")  # not writable, even for root


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT + "\n")
    return path


def settings(model, corpus) -> IndexSettings:
    d = model.dims
    return IndexSettings(model.name, str(corpus), d.n_layers, d.d_mlp, top_k=3, window=16,
                         batch_size=2, chunk_windows=2)  # fmt: skip


def tables(folder):
    return [pq.read_table(folder / name) for name in ("neurons.parquet", "examples.parquet")]


HOLD = """
import sys, time
from pathlib import Path
from lmtt.index.jobs import FolderLock
with FolderLock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.fixture()
def holder(tmp_path):
    """Another process holding the lock of tmp_path / 'out' (killed at the end)."""
    folder = tmp_path / "out"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "locked"
    yield folder, proc
    proc.kill()
    proc.wait()


def test_a_second_job_refuses_naming_the_holder(holder, gpt2_model, corpus, capsys):
    folder, proc = holder
    with pytest.raises(FolderBusyError, match=rf"in use by another lmtt job \(pid {proc.pid} on"):
        index_neurons(gpt2_model, corpus, folder, settings(gpt2_model, corpus), progress=False)
    argv = ["index-neurons", "--model", gpt2_model.source, "--corpus", str(corpus)]
    assert main([*argv, "--out", str(folder), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"pid {proc.pid}" in err and "started 20" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in folder.iterdir()) == [LOCK]  # nothing written


def test_a_dead_holders_lock_is_taken_over(holder, gpt2_model, corpus):
    folder, proc = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (folder / LOCK).exists()  # it died holding it
    state = index_neurons(gpt2_model, corpus, folder, settings(gpt2_model, corpus), progress=False)
    assert state.complete and not (folder / LOCK).exists()


def test_the_lock_refuses_within_one_process_too(tmp_path):
    busy = pytest.raises(FolderBusyError, match=f"pid {os.getpid()}")
    with FolderLock(tmp_path), busy, FolderLock(tmp_path):
        pass
    with FolderLock(tmp_path):  # released
        pass


def _interrupt_after(monkeypatch, n: int) -> list:
    import lmtt.index.neuron_index as job

    real, calls = job.save_state, []

    def crash(path, state):
        if len(calls) == n:
            raise KeyboardInterrupt
        calls.append(state.next_chunk)
        real(path, state)

    monkeypatch.setattr(job, "save_state", crash)
    return calls


@pytest.mark.parametrize("change", ["same size", "appended"])
def test_a_resume_after_the_corpus_changed_refuses(gpt2_model, corpus, tmp_path, monkeypatch,
                                                   change):  # fmt: skip
    s, out = settings(gpt2_model, corpus), tmp_path / "run"
    calls = _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        index_neurons(gpt2_model, corpus, out, s, progress=False)
    monkeypatch.undo()
    assert calls == [1, 2]
    original = corpus.read_text()
    edited = (
        original.replace("quick", "quack", 1) if change == "same size" else original + "\nMore."
    )
    corpus.write_text(edited)
    what = "read differently" if change == "same size" else "files or sizes differ: corpus.txt"
    with pytest.raises(CorpusChangedError, match=what):
        index_neurons(gpt2_model, corpus, out, s, progress=False)
    corpus.write_text(original)  # restored: the job resumes, equal to an uninterrupted run
    index_neurons(gpt2_model, corpus, out, s, progress=False)
    index_neurons(gpt2_model, corpus, tmp_path / "single", s, progress=False)
    for a, b in zip(tables(out), tables(tmp_path / "single"), strict=True):
        assert a.equals(b)


def test_a_full_disk_is_one_line_and_the_job_resumes(gpt2_folder, corpus, tmp_path, monkeypatch,
                                                    capsys):  # fmt: skip
    import lmtt.index.neuron_index as job

    real, calls = job.torch.save, []

    def full(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(job.torch, "save", full)
    argv = ["index-neurons", "--model", str(gpt2_folder), "--corpus", str(corpus), "--top-k", "3",
            "--window", "16", "--chunk-windows", "2", "--quiet"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "resumes the job" in err
    assert len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "run").rglob("*.tmp"))  # no half-written file
    monkeypatch.undo()
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    assert main([*argv, "--out", str(tmp_path / "single")]) == 0
    for a, b in zip(tables(tmp_path / "run"), tables(tmp_path / "single"), strict=True):
        assert a.equals(b)


def _writable(path: Path) -> bool:
    try:
        path.mkdir()
    except OSError:
        return False
    path.rmdir()
    return True


@pytest.mark.skipif(_writable(READ_ONLY), reason="/sys is writable on this machine")
@pytest.mark.parametrize("command", ["index-neurons", "index-contexts"])
def test_an_unwritable_output_is_refused_before_any_work(gpt2_folder, corpus, capsys, command):
    argv = [command, "--model", str(gpt2_folder), "--corpus", str(corpus), "--quiet"]
    assert main([*argv, "--out", str(READ_ONLY)]) == 2
    err = capsys.readouterr().err
    assert "is not writable" in err and len(err.strip().splitlines()) == 1


def test_a_failed_context_build_leaves_nothing(gpt2_model, tmp_path, monkeypatch):
    from lmtt.index import context_index

    (tmp_path / "c.txt").write_text("one two three\n\nfour five six\n\nseven eight\n")
    out = tmp_path / "ctx"
    with pytest.raises(LmttError, match="does not exist"):  # a missing corpus: nothing made
        context_index.build_context_index(gpt2_model, tmp_path / "missing.txt", out)
    assert not out.exists()
    calls = []

    def fail_on_second(self, *args):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_add(self, *args)

    real_add = context_index._Writer.add
    monkeypatch.setattr(context_index._Writer, "add", fail_on_second)
    with pytest.raises(LmttError, match="No space left"):
        context_index.build_context_index(gpt2_model, tmp_path / "c.txt", out, progress=False)
    assert not out.exists()  # the folder it made is gone again
    monkeypatch.undo()
    meta = context_index.build_context_index(gpt2_model, tmp_path / "c.txt", out, progress=False)
    assert meta["n_tokens"] > 0 and not (out / ".partial").exists()


def test_fresh_output_clears_a_dead_jobs_staging_folder(tmp_path):
    out = tmp_path / "o"
    (out / ".partial").mkdir(parents=True)
    (out / ".partial" / "layer-0.f16").write_bytes(b"half")  # a job killed outright
    with fresh_output(out, "m.json", ContextIndexError) as staging:
        assert not any(staging.iterdir())
        (staging / "data.bin").write_bytes(b"x")
        (staging / "m.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == ["data.bin", "m.json"]
    with (
        pytest.raises(ContextIndexError, match="not empty"),
        fresh_output(out, "m.json", ContextIndexError),
    ):
        pass
