"""Weights downloaded on first use: the real download code against 127.0.0.1 servers.

The URL path (torchvision's kind of weights) is exercised end to end: success into
the torch hub cache, a hash mismatch, a body cut short, a host that never answers, a
closed port, the offline switches, two processes racing for one file, a corrupt
cached file. The Hub path (``timm/...``, ``hf/<repo_id>``) goes through
``huggingface_hub`` itself with ``HF_ENDPOINT`` pointing at a local server that
answers the Hub's ``resolve`` requests.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from sktransfer import (CorruptWeightsError, MissingWeightsError, PretrainedWeights,
                        WeightsDownloadError, download_weights, get_backbone)
from sktransfer.backbones import BACKBONES, register_backbone
from sktransfer.cli import main

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FileServer:
    """An HTTP server on 127.0.0.1 serving ``files`` (path -> bytes), as a plain file host
    and as the Hugging Face Hub's ``/<repo>/resolve/<revision>/<file>``."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.mode: dict[str, str] = {}  # path -> "truncate" | "slow"
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _answer(self, body):
                path = self.path.split("?")[0].replace("/resolve/main/", "/")
                server.requests.append((self.command, path))
                data = server.files.get(path)
                if data is None:
                    code = 401 if path.startswith("/api/") else 404
                    self.send_response(code)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.end_headers()
                if not body:
                    return
                mode = server.mode.get(path)
                if mode in ("truncate", "truncate once"):  # the connection drops halfway
                    self.wfile.write(data[:len(data) // 2])
                    if mode == "truncate once":
                        server.mode[path] = None
                    return
                step = max(1, len(data) // 20) if mode == "slow" else len(data)
                for start in range(0, len(data), step):
                    self.wfile.write(data[start:start + step])
                    if mode == "slow":
                        time.sleep(0.05)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def gets(self, path):
        return sum(1 for method, p in self.requests if method == "GET" and p == path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FileServer()
    yield s
    s.close()


@pytest.fixture
def online(monkeypatch, tmp_path):
    """Downloads on (conftest switches them off for the suite), caches in tmp_path."""
    monkeypatch.delenv("SKTRANSFER_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("SKTRANSFER_DOWNLOAD_TIMEOUT", "5")
    return tmp_path / "torch" / "hub" / "checkpoints"


def _state_bytes(state) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.fixture
def tiny_remote(server, tiny_weights):
    """A backbone 'dl_tiny' whose DEFAULT weights are a torch-hub-style file on the server."""
    _, state = tiny_weights
    data = _state_bytes(state)
    filename = f"dl_tiny-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    server.files[f"/models/{filename}"] = data
    stated = PretrainedWeights("dl_tiny", filename, url=f"{server.url}/models/{filename}",
                               check_hash=True)

    def dl_tiny(weights=None):
        backbone = get_backbone("tiny_cnn")
        if weights is not None:
            stated.load_into(backbone)
        return backbone

    dl_tiny.pretrained_weights = stated
    register_backbone("dl_tiny", dl_tiny)
    yield stated, state, data
    BACKBONES.unregister("dl_tiny")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != ".locks") \
        if folder.is_dir() else []


# -- URL weights (torchvision's kind) ---------------------------------------------------
def test_first_use_downloads_into_the_torch_hub_cache_then_reuses_it(online, server,
                                                                      tiny_remote):
    stated, state, data = tiny_remote
    backbone = get_backbone("dl_tiny", weights="DEFAULT")
    target = online / stated.filename
    assert target.read_bytes() == data and _leftovers(online) == [stated.filename]
    torch.testing.assert_close(backbone.blocks[1][0].weight, state["blocks.1.0.weight"])
    get_backbone("dl_tiny", weights="DEFAULT")  # second use: from the cache
    assert server.gets(f"/models/{stated.filename}") == 1


def test_hash_mismatch_leaves_nothing_behind(online, server, tiny_remote):
    stated, _, data = tiny_remote
    server.files["/models/dl_tiny-00000000.pth"] = data
    wrong = PretrainedWeights("dl_tiny", "dl_tiny-00000000.pth",
                              url=f"{server.url}/models/dl_tiny-00000000.pth", check_hash=True)
    with pytest.raises(WeightsDownloadError, match=r"SHA-256 .* starting with '00000000'"):
        wrong.fetch(progress=False)
    assert _leftovers(online) == []


def test_a_body_cut_short_leaves_nothing_behind(online, server, tiny_remote):
    stated, _, _ = tiny_remote
    server.mode[f"/models/{stated.filename}"] = "truncate"
    with pytest.raises(WeightsDownloadError, match=r"stopped after \d+ of \d+ bytes") as info:
        get_backbone("dl_tiny", weights="DEFAULT")
    assert stated.url in str(info.value) and str(online) in str(info.value)
    assert _leftovers(online) == []
    # without a hash in the name only the length tells: it is checked all the same
    plain = PretrainedWeights("dl_tiny", "plain.pth", url=stated.url)
    with pytest.raises(WeightsDownloadError, match="connection closed early"):
        plain.fetch(progress=False)
    assert _leftovers(online) == []


@pytest.mark.parametrize("variable", ["SKTRANSFER_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_switch_makes_no_request(online, server, tiny_remote, monkeypatch, variable):
    stated, _, _ = tiny_remote
    monkeypatch.setenv(variable, "1")
    with pytest.raises(MissingWeightsError) as info:
        get_backbone("dl_tiny", weights="DEFAULT")
    message = str(info.value)
    assert f"Downloads are off ({variable} is set)" in message
    assert stated.filename in message and str(online) in message
    assert "sktransfer download dl_tiny" in message and "weights=None" in message
    assert server.requests == []


def test_a_host_that_never_answers_fails_within_the_timeout(online, monkeypatch, tiny_remote):
    monkeypatch.setenv("SKTRANSFER_DOWNLOAD_TIMEOUT", "0.5")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # the kernel accepts the connection; nobody ever answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/models/x-1234.pth"
    start = time.monotonic()
    try:
        with pytest.raises(WeightsDownloadError) as info:
            PretrainedWeights("dl_tiny", "x-1234.pth", url=url).fetch(progress=False)
    finally:
        silent.close()
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert url in message and "no answer within 0.5 s" in message
    assert str(online / "x-1234.pth") in message and "sktransfer download dl_tiny" in message
    assert _leftovers(online) == []


def test_a_closed_port_is_a_clear_error(online, tiny_remote):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(WeightsDownloadError, match=r"refused.*nothing was saved"):
        PretrainedWeights("dl_tiny", "x.pth", url=f"http://127.0.0.1:{port}/x.pth").fetch()


def _fetch_in_child(stated, barrier, results):
    barrier.wait()  # both processes ask at the same moment
    try:
        results.put(str(stated.fetch(progress=False)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails
        results.put(f"{type(exc).__name__}: {exc}")


def test_two_processes_racing_end_with_one_good_file(online, server, tiny_remote):
    stated, _, data = tiny_remote
    server.mode[f"/models/{stated.filename}"] = "slow"  # ~1 s: the second one must wait
    context = multiprocessing.get_context("fork")  # torch is imported already: fast
    barrier, results = context.Barrier(2), context.Queue()
    children = [context.Process(target=_fetch_in_child, args=(stated, barrier, results))
                for _ in range(2)]
    for child in children:
        child.start()
    answers = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)
    assert answers == [str(online / stated.filename)] * 2
    assert [child.exitcode for child in children] == [0, 0]
    assert (online / stated.filename).read_bytes() == data
    assert server.gets(f"/models/{stated.filename}") == 1
    assert _leftovers(online) == [stated.filename]


def test_a_truncated_cached_file_names_itself_and_the_fix(online, tiny_remote):
    stated, _, data = tiny_remote
    online.mkdir(parents=True)
    (online / stated.filename).write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptWeightsError) as info:
        get_backbone("dl_tiny", weights="DEFAULT")
    message = str(info.value)
    assert str(online / stated.filename) in message and "truncated or corrupt" in message
    assert f"rm '{online / stated.filename}'" in message


def test_download_command_prepares_a_folder_for_an_offline_machine(online, server, tiny_remote,
                                                                   tmp_path, capsys):
    stated, _, data = tiny_remote
    assert main(["download", "dl_tiny", "--to", str(tmp_path / "carry"), "-q"]) == 0
    out, err = capsys.readouterr()
    target = tmp_path / "carry" / "torch" / "hub" / "checkpoints" / stated.filename
    assert out.split("\t")[:2] == ["dl_tiny", str(target)] and target.read_bytes() == data
    assert f"TORCH_HOME={tmp_path / 'carry'}/torch" in err
    assert not online.exists()  # this machine's cache is left alone
    assert main(["backbones", "dl_tiny"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split()[2] == "no"
    assert main(["download", "dl_tiny", "-q"]) == 0
    assert "(downloaded)" in capsys.readouterr().out
    assert main(["backbones", "dl_tiny"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split()[2] == "yes"


def test_download_command_errors(online, capsys, monkeypatch, tmp_path):
    assert main(["download", "tiny_cnn"]) == 1
    assert "no pretrained weights to download (use --weights none)" in capsys.readouterr().err
    assert main(["download", "resnet81"]) == 1
    assert "did you mean 'resnet18'" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["download", "resnet18", "--to", str(tmp_path / "file")]) == 2
    assert "--to" in capsys.readouterr().err
    monkeypatch.setenv("SKTRANSFER_OFFLINE", "1")
    assert main(["download", "resnet18"]) == 1
    err = capsys.readouterr().err
    assert "resnet18-f37072fd.pth" in err and "Downloads are off" in err and "--weights none" in err


# -- the Hugging Face Hub, through huggingface_hub and HF_ENDPOINT ----------------------
@pytest.fixture
def hub(server, online, monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path / "hf"


def test_timm_weights_come_from_the_hub_into_its_cache(hub, server, monkeypatch):
    pytest.importorskip("sktransfer_timm")
    from safetensors.torch import save

    reference = get_backbone("timm/test_resnet", weights=None).source_module
    state = {k: torch.randn_like(v) if v.is_floating_point() else v
             for k, v in reference.state_dict().items()}
    repo = "timm/test_resnet.r160_in1k"
    server.files[f"/{repo}/model.safetensors"] = save(state)
    backbone = get_backbone("timm/test_resnet", weights="DEFAULT")
    cached = hub / f"models--{repo.replace('/', '--')}" / "snapshots" / COMMIT / \
        "model.safetensors"
    assert cached.is_file() and str(cached) in backbone.weights
    torch.testing.assert_close(backbone.source_module.state_dict()["conv1.0.weight"],
                               state["conv1.0.weight"])
    # the file is found again offline, as timm.create_model(pretrained=True) would find it
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    requests = len(server.requests)
    get_backbone("timm/test_resnet", weights="DEFAULT")
    assert len(server.requests) == requests
    # a cached file gone bad names the link and the blob behind it
    blob = cached.resolve()
    blob.write_bytes(blob.read_bytes()[:1000])
    with pytest.raises(CorruptWeightsError) as info:
        get_backbone("timm/test_resnet", weights="DEFAULT")
    assert f"rm '{cached}' '{blob}'" in str(info.value)


def test_hub_download_cut_short_is_resumed_into_one_good_file(hub, server):
    pytest.importorskip("sktransfer_timm")
    from safetensors.torch import save

    state = get_backbone("timm/test_resnet", weights=None).source_module.state_dict()
    data = save(state)
    path = "/timm/test_resnet.r160_in1k/model.safetensors"
    server.files[path], server.mode[path] = data, "truncate once"
    found = download_weights("timm/test_resnet", progress=False)
    assert found.read_bytes() == data and server.gets(path) == 2  # huggingface_hub retried
    assert not list(hub.rglob("*.incomplete"))


def test_timm_offline_and_absent_says_what_to_run(hub, server, monkeypatch):
    pytest.importorskip("sktransfer_timm")
    monkeypatch.setenv("SKTRANSFER_OFFLINE", "1")
    with pytest.raises(MissingWeightsError) as info:
        get_backbone("timm/test_resnet", weights="DEFAULT")
    message = str(info.value)
    assert "sktransfer download timm/test_resnet.r160_in1k --to DIR" in message
    assert "hf download timm/test_resnet.r160_in1k" in message and str(hub) in message
    assert "Downloads are off (SKTRANSFER_OFFLINE is set)" in message
    assert server.requests == []


def test_hf_repo_id_downloads_a_text_encoder(hub, server, tmp_path, monkeypatch):
    pytest.importorskip("sktransfer_transformers")
    transformers = pytest.importorskip("transformers")
    from sktransfer import FeatureExtractor
    from sktransfer_transformers import minilm_l6_dir

    folder = tmp_path / "tiny-bert"
    config = transformers.AutoConfig.for_model(
        "bert", vocab_size=30522, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=16)
    transformers.AutoModel.from_config(config).save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(str(minilm_l6_dir())).save_pretrained(folder)
    for path in folder.rglob("*"):
        if path.is_file():
            server.files[f"/acme/tiny-bert/{path.relative_to(folder).as_posix()}"] = \
                path.read_bytes()
    texts = ["a first text", "and another one"]
    remote = FeatureExtractor("hf/acme/tiny-bert").fit_transform(texts)
    local = FeatureExtractor(f"hf/{folder}").fit_transform(texts)
    torch.testing.assert_close(torch.as_tensor(remote), torch.as_tensor(local))
    snapshot = hub / "models--acme--tiny-bert" / "snapshots" / COMMIT
    assert (snapshot / "config.json").is_file() and (snapshot / "model.safetensors").is_file()
    # a fresh cache, offline: the message says what to run where there is network
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    requests = len(server.requests)
    with pytest.raises(MissingWeightsError, match="sktransfer download hf/acme/tiny-bert"):
        FeatureExtractor("hf/acme/tiny-bert").fit(texts)
    assert len(server.requests) == requests
