"""Batch jobs (lmtt.index.batch, lmtt.index.batch_store): a prompt file's routes and head and
neuron contributions, batched, resumable and sharded without mixing or losing a prompt."""

import importlib.util
import json

import pytest
import torch

from lmtt.corpus.prompt_files import PromptFileError, PromptRow, read_prompt_file
from lmtt.flow.contributions import neuron_contributions
from lmtt.flow.graph import routes_and_blocks
from lmtt.index.batch import BatchError, BatchSettings, run_batch
from lmtt.index.batch_store import open_batch
from lmtt.models.trace import run_trace

PROMPTS = ["When Mary and John went to the store, John gave a drink to", "The cat sat on",
           "One, two, three, four,", "She said that he", "A B C D A B C"]  # fmt: skip
SETTINGS = BatchSettings(threshold=0.05, batch_size=2, top_neurons=4)


@pytest.fixture
def prompt_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n\n", encoding="utf-8")
    return path


def _sorted(frame, *keys):
    return frame.sort_values(list(keys)).reset_index(drop=True)


def test_prompt_files_of_every_format(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"prompt": "hi there", "target": " you"}\n\n'
                                      '{"prompt": "bye"}\n', encoding="utf-8")  # fmt: skip
    (tmp_path / "a.csv").write_text("prompt,foil\nhi there, me\n", encoding="utf-8")
    assert read_prompt_file(tmp_path / "a.jsonl") == [PromptRow("hi there", " you"),
                                                      PromptRow("bye")]  # fmt: skip
    assert read_prompt_file(tmp_path / "a.csv") == [PromptRow("hi there", foil=" me")]
    # a quoted CSV field keeps its newlines; only \n ends a .txt or .jsonl line
    (tmp_path / "m.csv").write_text('prompt,target\n"ROMEO:\nBut soft", x\nnext,y\n',
                                    encoding="utf-8")  # fmt: skip
    assert read_prompt_file(tmp_path / "m.csv") == [PromptRow("ROMEO:\nBut soft", " x"),
                                                    PromptRow("next", "y")]  # fmt: skip
    (tmp_path / "s.txt").write_text("one\u2028line\r\ntwo\n", encoding="utf-8")
    assert read_prompt_file(tmp_path / "s.txt") == [PromptRow("one\u2028line"), PromptRow("two")]
    bad = {"b.jsonl": '{"text": "no prompt"}\n', "c.jsonl": "{not json\n",
           "d.csv": "text\nhi\n", "e.txt": "\n\n", "f.md": "hi\n"}  # fmt: skip
    for name, text in bad.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(PromptFileError):
            read_prompt_file(tmp_path / name)


def _alone(model, prompt: str, settings):
    """One prompt's heads [L, H], top neurons {(layer, neuron): contribution}, edges
    {id: weight} and (top token, its probability), from its own trace and the one-prompt
    routes (the reference)."""
    trace = run_trace(model, prompt)
    pos = trace.n_tokens - 1
    graph, blocks = routes_and_blocks(trace, pos, settings.threshold)
    heads = torch.stack([b.per_head[0] for b in blocks])
    neurons = {}
    for layer in range(trace.n_layers):
        n = neuron_contributions(trace, layer, [pos]).neurons[0]
        top = n.topk(settings.top_neurons)
        neurons |= {(layer, int(i)): float(v) for v, i in zip(*top, strict=True)}
    probs = trace.probabilities(pos)
    top = (trace.vocab[int(probs.argmax())], float(probs.max()))
    return heads, neurons, {e.id: e.weight for e in graph.edges}, top


def test_batch_rows_equal_one_prompt_at_a_time(gpt2_model, prompt_file, tmp_path):
    results = open_batch(run_batch(gpt2_model, prompt_file, tmp_path / "b", SETTINGS,
                                   progress=False))  # fmt: skip
    heads = _sorted(results.sql("SELECT * FROM heads"), "prompt_id", "layer", "head")
    neurons, edges = results.sql("SELECT * FROM neurons"), results.sql("SELECT * FROM edges")
    prompts = _sorted(results.sql("SELECT * FROM prompts"), "prompt_id")
    L, H = gpt2_model.dims.n_layers, gpt2_model.dims.n_heads
    assert len(heads) == len(PROMPTS) * L * H
    for i, prompt in enumerate(PROMPTS):
        want_heads, want_neurons, want_edges, want_top = _alone(gpt2_model, prompt, SETTINGS)
        row = prompts[prompts.prompt_id == i].iloc[0]
        assert row.top_token == row.target == want_top[0]
        assert row.target_prob == pytest.approx(want_top[1], abs=1e-5)
        got = torch.tensor(heads[heads.prompt_id == i].contribution.values).float()
        torch.testing.assert_close(got, want_heads.flatten(), atol=1e-5, rtol=1e-4)
        mine = neurons[neurons.prompt_id == i]
        got = dict(zip(zip(mine.layer, mine.neuron, strict=True), mine.contribution, strict=True))
        assert got.keys() == want_neurons.keys()
        for key, value in want_neurons.items():
            assert got[key] == pytest.approx(value, abs=1e-5)
        mine = edges[edges.prompt_id == i]
        assert set(mine.source + ">" + mine.target + ">" + mine.kind) == set(want_edges)
        for e in mine.itertuples():
            assert e.weight == pytest.approx(want_edges[f"{e.source}>{e.target}>{e.kind}"],
                                             abs=1e-5)  # fmt: skip
    prompts = _sorted(results.sql("SELECT * FROM prompts"), "prompt_id")
    assert list(prompts.prompt) == PROMPTS
    summary = results.head_summary()
    assert len(summary) == L * H and (summary.prompts == len(PROMPTS)).all()
    assert summary.route_share.between(0, 1).all()
    assert len(results.prompts_by_head(0, 1, k=3)) == 3


def test_chunks_hold_prompts_of_like_length(gpt2_model, prompt_file, tmp_path):
    """A shard's chunks take its prompts in order of length (less padding in each pass)."""
    import pyarrow.parquet as pq

    folder = run_batch(gpt2_model, prompt_file, tmp_path / "b", SETTINGS, progress=False)
    lengths = {i: len(run_trace(gpt2_model, p).tokens) for i, p in enumerate(PROMPTS)}
    order = sorted(lengths, key=lambda i: (lengths[i], i))
    for k in range(3):
        part = pq.read_table(folder / "prompts" / f"part-0-1-{k:06d}.parquet").to_pydict()
        assert part["prompt_id"] == order[2 * k : 2 * k + 2]


def test_a_killed_job_resumes_and_shards_merge_exactly(gpt2_model, prompt_file, tmp_path):
    whole = open_batch(run_batch(gpt2_model, prompt_file, tmp_path / "w", SETTINGS,
                                 progress=False)).sql("SELECT * FROM heads")  # fmt: skip
    folder = tmp_path / "s"
    for i in (0, 1):
        run_batch(gpt2_model, prompt_file, folder, SETTINGS, shard=(i, 2), progress=False)
    state = folder / "state-1-of-2.json"
    data = json.loads(state.read_text())
    data["done"] = data["done"][:-1]  # as if killed before recording its last chunk
    state.write_text(json.dumps(data))
    run_batch(gpt2_model, prompt_file, folder, SETTINGS, shard=(1, 2), progress=False)
    merged = open_batch(folder).sql("SELECT * FROM heads")
    keys = ("prompt_id", "layer", "head")
    assert len(merged) == len(whole)  # the redone chunk replaced its files: no duplicate
    a, b = _sorted(merged, *keys), _sorted(whole, *keys)
    assert (a[list(keys)] == b[list(keys)]).all().all()
    got, want = torch.tensor(a.contribution.values), torch.tensor(b.contribution.values)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_a_folder_of_another_job_or_a_bad_query_is_refused(gpt2_model, prompt_file, tmp_path):
    folder = run_batch(gpt2_model, prompt_file, tmp_path / "b", SETTINGS, progress=False)
    other = BatchSettings(threshold=0.2, batch_size=2, top_neurons=4)
    with pytest.raises(BatchError, match="another settings"):
        run_batch(gpt2_model, prompt_file, folder, other, progress=False)
    with pytest.raises(BatchError, match="does not exist"):
        run_batch(gpt2_model, prompt_file, folder, SETTINGS, shard=(2, 2), progress=False)
    with pytest.raises(BatchError, match="The query failed"):
        open_batch(folder).sql("SELECT nonsense FROM heads")
    with pytest.raises(BatchError, match="not a batch folder"):
        open_batch(tmp_path)
    # a folder begun before chunks went in order of length: read, but never resumed (its
    # chunks held other prompts)
    manifest = json.loads((folder / "batch.json").read_text())
    del manifest["chunking"]
    (folder / "batch.json").write_text(json.dumps(manifest))
    assert len(open_batch(folder).sql("SELECT * FROM prompts")) == len(PROMPTS)
    with pytest.raises(BatchError, match="older lmtt"):
        run_batch(gpt2_model, prompt_file, folder, SETTINGS, progress=False)


def test_a_resume_whose_chunks_changed_is_refused(gpt2_model, prompt_file, tmp_path):
    """Chunks follow token lengths: if another tokenizer (under the same model name) put other
    prompts in a chunk, the chunks recorded as done would not be this run's."""
    folder = run_batch(gpt2_model, prompt_file, tmp_path / "b", SETTINGS, progress=False)
    state = folder / "state-0-of-1.json"
    data = json.loads(state.read_text())
    run_batch(gpt2_model, prompt_file, folder, SETTINGS, progress=False)  # same chunks: fine
    state.write_text(json.dumps(data | {"chunks_sha256": "0" * 64}))
    with pytest.raises(BatchError, match="chunks held other prompts"):
        run_batch(gpt2_model, prompt_file, folder, SETTINGS, progress=False)


def test_the_heap_is_frozen_for_the_job_only(gpt2_model, prompt_file, tmp_path, monkeypatch):
    """The job freezes the heap while it runs and unfreezes it after, even when it fails; a
    heap frozen by the host is left frozen."""
    import gc

    from lmtt.index import batch

    seen = []
    real = batch._run_chunk

    def watched(*args, **kwargs):
        seen.append(gc.get_freeze_count() > 0)
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "_run_chunk", watched)
    assert gc.get_freeze_count() == 0
    run_batch(gpt2_model, prompt_file, tmp_path / "a", SETTINGS, progress=False)
    assert seen and all(seen) and gc.get_freeze_count() == 0

    def failing(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(batch, "_run_chunk", failing)
    with pytest.raises(RuntimeError, match="killed"):
        run_batch(gpt2_model, prompt_file, tmp_path / "b", SETTINGS, progress=False)
    assert gc.get_freeze_count() == 0
    gc.freeze()  # the host's
    try:
        with pytest.raises(RuntimeError, match="killed"):
            run_batch(gpt2_model, prompt_file, tmp_path / "c", SETTINGS, progress=False)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_verified_batch_measures_every_edge(gpt2_model, prompt_file, tmp_path):
    settings = BatchSettings(threshold=0.05, batch_size=2, top_neurons=4, verify=True)
    results = open_batch(run_batch(gpt2_model, prompt_file, tmp_path / "v", settings,
                                   progress=False))  # fmt: skip
    edges = results.sql("SELECT * FROM edges")
    assert len(edges) and edges.effect.notna().all()
    prompts = results.sql("SELECT completeness FROM prompts")
    assert prompts.completeness.notna().all()
    summary = results.head_summary()
    assert summary.mean_effect.notna().any()  # heads leading a measured attention edge
    unverified = open_batch(run_batch(gpt2_model, prompt_file, tmp_path / "u", SETTINGS,
                                      progress=False)).head_summary()  # fmt: skip
    assert unverified.mean_effect.isna().all()


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="the ray extra is not installed"
)
def test_ray_shards_equal_the_single_run(gpt2_folder, gpt2_model, prompt_file, tmp_path):
    from lmtt.index.batch import run_batch_on_ray

    single = open_batch(run_batch(gpt2_model, prompt_file, tmp_path / "one", SETTINGS,
                                  progress=False))  # fmt: skip
    ray = open_batch(run_batch_on_ray(str(gpt2_folder), prompt_file, tmp_path / "ray", SETTINGS,
                                      n_shards=2))  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "ray").glob("state-*")) == [
        "state-0-of-2.json", "state-1-of-2.json"]  # fmt: skip
    for table, keys in (("heads", ("prompt_id", "layer", "head")), ("prompts", ("prompt_id",))):
        a = _sorted(ray.sql(f"SELECT * FROM {table}"), *keys)
        b = _sorted(single.sql(f"SELECT * FROM {table}"), *keys)
        assert len(a) == len(b) and (a[list(keys)] == b[list(keys)]).all().all()


def test_another_shard_count_or_a_bad_row_is_refused_before_any_work(gpt2_model, prompt_file,
                                                                     tmp_path):  # fmt: skip
    folder = run_batch(gpt2_model, prompt_file, tmp_path / "b", SETTINGS, progress=False)
    with pytest.raises(BatchError, match="another shards"):  # 0/2 would count prompts twice
        run_batch(gpt2_model, prompt_file, folder, SETTINGS, shard=(0, 2), progress=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": "also fine", "target": "not one token"}\n')
    with pytest.raises(BatchError, match=r"Prompt 1 \(row 2\)"):
        run_batch(gpt2_model, bad, tmp_path / "c", SETTINGS, progress=False)
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").rglob("*.parquet"))
    long_cf = json.dumps({"prompt": "fine", "counterfactual": "word " * 500})  # over n_ctx
    bad.write_text('{"prompt": "fine"}\n' + long_cf + "\n")
    with pytest.raises(BatchError, match=r"Prompt 1 \(row 2\).*its counterfactual.*tokens long"):
        run_batch(gpt2_model, bad, tmp_path / "d", SETTINGS, progress=False)
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").rglob("*.parquet"))


def test_a_masked_lm_batch_explains_the_mask(tmp_path):
    """A masked LM's prompts are explained at their first [MASK], not their last token."""
    from lmtt.models import load_model
    from lmtt.testing import make_tiny_bert

    bert = load_model(str(make_tiny_bert(tmp_path / "bert", n_layers=2)), "cpu")
    path = tmp_path / "masked.txt"
    path.write_text("the cat [MASK] on the mat\n[MASK] dog sat down\n", encoding="utf-8")
    results = open_batch(run_batch(bert, path, tmp_path / "b", SETTINGS, progress=False))
    prompts = _sorted(results.sql("SELECT * FROM prompts"), "prompt_id")
    for row in prompts.itertuples():
        trace = run_trace(bert, row.prompt)
        mask = trace.token_strs.index("[MASK]")
        assert row.target_pos == mask < trace.n_tokens - 1
        assert row.top_token == trace.vocab[int(trace.logits[mask].argmax())]


def test_a_counterfactual_gets_its_routes_diffed_against_the_prompts(gpt2_model, tmp_path):
    """A row's counterfactual is traced in the same batched pass; the diffs table holds its
    routes against the prompt's, edge by edge, as lmtt diff computes them."""
    from lmtt.flow.diff import diff_routes
    from lmtt.flow.graph import routes

    clean, cf = (
        "When Mary and John went to the store, John gave a drink to",
        ("When Mary and John went to the store, Mary gave a drink to"),
    )
    path = tmp_path / "pairs.jsonl"
    lines = [json.dumps({"prompt": clean, "counterfactual": cf}), '{"prompt": "The cat sat on"}']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    results = open_batch(run_batch(gpt2_model, path, tmp_path / "b", SETTINGS, progress=False))
    diffs = results.sql("SELECT * FROM diffs ORDER BY prompt_id, source, target, kind")
    assert set(diffs.prompt_id) == {0}  # only the row with a counterfactual
    want = diff_routes(routes(run_trace(gpt2_model, clean), None, SETTINGS.threshold),
                       routes(run_trace(gpt2_model, cf), None, SETTINGS.threshold))  # fmt: skip
    got = {(r.source, r.target, r.kind): r.status for r in diffs.itertuples()}
    assert got == {
        **{(e.source.id, e.target.id, e.kind): "only prompt" for e in want.only_a},
        **{(e.source.id, e.target.id, e.kind): "only counterfactual" for e in want.only_b},
        **{(a.source.id, a.target.id, a.kind): "both" for a, _ in want.both},
    }
    both = diffs[diffs.status == "both"]
    changes = {(a.source.id, a.target.id): (a.weight, b.weight) for a, b in want.both}
    for r in both.itertuples():
        assert (r.weight, r.weight_counterfactual) == pytest.approx(changes[(r.source, r.target)],
                                                                     abs=1e-4)  # fmt: skip
    prompts = _sorted(results.sql("SELECT * FROM prompts"), "prompt_id")
    assert list(prompts.counterfactual) == [cf, ""]
    assert prompts.counterfactual_top_token[0] != "" and prompts.counterfactual_top_token[1] == ""
