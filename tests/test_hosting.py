"""Hosted mode's settings and refusals (DESIGN: an app open to strangers)."""

from __future__ import annotations

import pytest

from lmtt.hosting import HostingError, HostSettings, load_host_settings


def test_local_mode_is_the_default_and_has_no_caps():
    s = load_host_settings({})
    assert not s.hosted and s.models is None and s.max_prompt_chars is None
    s.check_prompt("x" * 10**6)
    s.check_model("/any/folder", ["demo"])
    assert s.check_data_path("/any/path", []).name == "path"


def test_hosted_defaults_file_and_environment(tmp_path):
    hosted = load_host_settings({"LMTT_MODE": "hosted"})
    assert hosted.hosted and hosted.max_prompt_tokens == 256 and hosted.runs_per_minute == 12
    settings = tmp_path / "hosting.yaml"
    settings.write_text(
        "mode: hosted\nmodels: [lmtt-demo-shakespeare]\nmax_prompt_chars: 100\n"
        f"data_folders: [{tmp_path}]\ncache_mb: 64\n"
    )
    s = load_host_settings({"LMTT_SETTINGS": str(settings), "LMTT_MAX_PROMPT_CHARS": "50"})
    assert s.models == ("lmtt-demo-shakespeare",) and s.max_prompt_chars == 50  # env wins
    assert s.data_folders == (tmp_path,) and s.cache_bytes == 64 * 2**20


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LMTT_MODE": "public"}, "mode must be"),
        ({"LMTT_MODE": "hosted", "LMTT_RUNS_PER_MINUTE": "0"}, "positive number"),
        ({"LMTT_CACHE_MB": "nan"}, "positive number"),
        ({"LMTT_MAX_PROMPT_TOKENS": "many"}, "positive number"),
        ({"LMTT_SETTINGS": "/no/such/file.yaml"}, "Cannot read"),
    ],
)
def test_bad_settings_are_refused(env, message):
    with pytest.raises(HostingError, match=message):
        load_host_settings(env)


def test_unknown_setting_in_the_file(tmp_path):
    (tmp_path / "s.yaml").write_text("mode: hosted\nmax_prompt_char: 10\n")
    with pytest.raises(HostingError, match="Unknown settings"):
        load_host_settings({"LMTT_SETTINGS": str(tmp_path / "s.yaml")})


def test_refusals_never_reveal_whether_a_path_exists(tmp_path):
    s = HostSettings(mode="hosted", data_folders=(tmp_path / "data",))
    (tmp_path / "data" / "corpus").mkdir(parents=True)
    (tmp_path / "data" / "corpus" / "a.txt").write_text("hello")
    (tmp_path / "secret.txt").write_text("private")
    messages = []
    for spec in (str(tmp_path), str(tmp_path / "missing"), "gpt2", "../etc"):
        with pytest.raises(HostingError) as err:
            s.check_model(spec, ["lmtt-demo-shakespeare"])
        messages.append(str(err.value))
    offered = s.offered_corpora()
    for path in (tmp_path / "secret.txt", tmp_path / "missing.txt",
                 tmp_path / "data" / ".." / "secret.txt"):  # fmt: skip
        with pytest.raises(HostingError) as err:
            s.check_data_path(path, offered)
        messages.append(str(err.value))
    assert len(set(messages[:4])) == 1 and len(set(messages[4:])) == 1
    assert s.check_data_path(tmp_path / "data" / "corpus" / "a.txt", offered)
    assert (tmp_path / "data" / "corpus") in offered and (tmp_path / "secret.txt") not in offered


def test_caps():
    s = HostSettings(mode="hosted", max_prompt_chars=10, max_prompt_tokens=5,
                     max_upload_bytes=100)  # fmt: skip
    with pytest.raises(HostingError, match="11 characters; this server takes at most 10"):
        s.check_prompt("x" * 11)
    with pytest.raises(HostingError, match="6 tokens"):
        s.check_tokens(6)
    with pytest.raises(HostingError, match="101 bytes"):
        s.check_upload(101)
    s.check_prompt("x" * 10)
    s.check_tokens(5)
    s.check_upload(100)


def test_the_example_settings_file_loads():
    from lmtt.config import config_dir

    s = load_host_settings({"LMTT_SETTINGS": str(config_dir() / "hosting.example.yaml")})
    assert s.hosted and s.models == ("lmtt-demo-shakespeare",) and s.cache_mb == 512
