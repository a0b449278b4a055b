"""A fake OpenAI-compatible LLM server for tests and benchmarks.

Run it with ``python -m streaming_agents.testing.fake_llm --port 0``; it prints
``READY http://127.0.0.1:PORT/v1`` once serving.  :class:`FakeLLM` runs it in a
subprocess (so it never shares the GIL with the tests) and talks to its admin
endpoints with ``urllib`` only.  Replies, latency and faults are scripted by a
:class:`~streaming_agents.testing.fake_llm_script.FakeLLMConfig`.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/embeddings`` (also without
``/v1``), ``GET /_admin/stats``, ``POST /_admin/reset``, ``GET|POST
/_admin/config``, ``GET /_admin/requests?last=N`` and ``GET
/_admin/authorizations`` (how many requests came with each ``Authorization``
header and ``model``: which key each agent's calls carried).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from streaming_agents.errors import ConfigError, InfrastructureError

if TYPE_CHECKING:
    from aiohttp import web

    from streaming_agents.testing.fake_llm_script import FakeLLMConfig, Script

__all__ = ["FakeLLM", "FakeLLMConfig", "main"]

_MODULE = "streaming_agents.testing.fake_llm"
_RING_SIZE = 10_000
# what makes two requests "the same" for requests_distinct
_CHAT_KEYS: tuple[str, ...] = ("model", "messages", "tools", "response_format")
_EMBEDDING_KEYS: tuple[str, ...] = ("model", "input")
_MALFORMED_BODY = b'{"id": "chatcmpl-broken", "choices": [ this is not json'


def __getattr__(name: str) -> Any:
    """Re-export ``FakeLLMConfig`` lazily, keeping the client import cheap."""
    if name == "FakeLLMConfig":
        from streaming_agents.testing.fake_llm_script import FakeLLMConfig

        return FakeLLMConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- server


class _Server:
    """The aiohttp application: scripted replies, counters and admin endpoints."""

    def __init__(self, script: Script) -> None:
        from aiohttp import web

        from streaming_agents.testing.fake_llm_script import canonical_digest

        self._web = web
        self._digest = canonical_digest
        self.script = script
        self.recent: collections.deque[bytes] = collections.deque(maxlen=_RING_SIZE)
        self.in_flight = 0
        self._zero()

    def _zero(self) -> None:
        self.requests_total = 0
        self.chat_total = 0
        self.embeddings_total = 0
        self.max_concurrent = self.in_flight
        self.by_status: collections.Counter[str] = collections.Counter()
        self.distinct: set[str] = set()
        self.recent.clear()
        self.authorizations: collections.Counter[tuple[str, str]] = collections.Counter()

    def app(self) -> web.Application:
        """Build the aiohttp application."""
        app = self._web.Application(client_max_size=64 * 1024 * 1024)
        for prefix in ("/v1", ""):
            app.router.add_post(f"{prefix}/chat/completions", self._chat)
            app.router.add_post(f"{prefix}/embeddings", self._embeddings)
        app.router.add_get("/_admin/stats", self._stats)
        app.router.add_post("/_admin/reset", self._reset)
        app.router.add_get("/_admin/config", self._get_config)
        app.router.add_post("/_admin/config", self._set_config)
        app.router.add_get("/_admin/requests", self._requests)
        app.router.add_get("/_admin/authorizations", self._authorizations)
        return app

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.chat_total += 1
        return await self._serve(request, chat=True)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        self.embeddings_total += 1
        return await self._serve(request, chat=False)

    async def _serve(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        self.requests_total += 1
        self.in_flight += 1
        self.max_concurrent = max(self.max_concurrent, self.in_flight)
        try:
            raw = await request.read()
            self.recent.append(raw)
            try:
                body = json.loads(raw)
            except ValueError as exc:
                body = exc
            if isinstance(body, dict):
                auth = request.headers.get("Authorization", "")
                self.authorizations[(auth, str(body.get("model", "")))] += 1
            if not isinstance(body, dict):
                self.by_status["400"] += 1
                return self._json({"error": {"message": "body must be a JSON object"}}, 400)
            keys = _CHAT_KEYS if chat else _EMBEDDING_KEYS
            digest = self._digest({"endpoint": chat, **{k: body.get(k) for k in keys}})
            self.distinct.add(digest)
            script = self.script
            outcome = script.chat(body, digest) if chat else script.embeddings(body)
            self.by_status["timeout" if outcome.kind == "timeout" else str(outcome.status)] += 1
            if outcome.kind == "timeout":
                await asyncio.sleep(outcome.delay_s)
                error = {"message": "fake LLM injected timeout", "type": "timeout"}
                return self._json({"error": error}, 504)
            delay = script.latency_s()
            if delay > 0:
                await asyncio.sleep(delay)
            if outcome.kind == "malformed":
                return self._web.Response(body=_MALFORMED_BODY, content_type="application/json")
            return self._json(outcome.body, outcome.status, outcome.headers)
        finally:
            self.in_flight -= 1

    def _json(
        self, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        return self._web.Response(
            body=json.dumps(payload).encode(),
            status=status,
            headers=headers,
            content_type="application/json",
        )

    async def _stats(self, request: web.Request) -> web.Response:
        return self._json(
            {
                "requests_total": self.requests_total,
                "requests_distinct": len(self.distinct),
                "in_flight": self.in_flight,
                "max_concurrent": self.max_concurrent,
                "by_status": dict(self.by_status),
                "chat_total": self.chat_total,
                "embeddings_total": self.embeddings_total,
            }
        )

    async def _reset(self, request: web.Request) -> web.Response:
        from streaming_agents.testing.fake_llm_script import Script

        self._zero()
        self.script = Script(self.script.config)  # re-seed the RNG
        return self._json({"ok": True})

    async def _get_config(self, request: web.Request) -> web.Response:
        return self._json(self.script.config.model_dump(mode="json", by_alias=True))

    async def _set_config(self, request: web.Request) -> web.Response:
        from pydantic import ValidationError

        from streaming_agents.testing.fake_llm_script import FakeLLMConfig, Script

        try:
            config = FakeLLMConfig.model_validate_json(await request.read())
        except ValidationError as exc:
            reason = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
                for err in exc.errors()
            )
            return self._json({"error": {"message": reason, "type": "invalid_config"}}, 400)
        self.script = Script(config)
        return self._json({"ok": True})

    async def _authorizations(self, request: web.Request) -> web.Response:
        rows = [
            {"authorization": auth, "model": model, "count": count}
            for (auth, model), count in sorted(self.authorizations.items())
        ]
        return self._json(rows)

    async def _requests(self, request: web.Request) -> web.Response:
        try:
            last = max(0, int(request.query.get("last", "100")))
        except ValueError:
            return self._json({"error": {"message": "last must be an integer"}}, 400)
        items = list(self.recent)[-last:] if last else []
        out: list[Any] = []
        for raw in items:
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append(raw.decode(errors="replace"))
        return self._json(out)


async def _run(host: str, port: int, script: Script, exit_on_stdin_eof: bool) -> None:
    """Serve until SIGTERM/SIGINT (or stdin EOF when asked)."""
    from aiohttp import web

    server = _Server(script)
    runner = web.AppRunner(
        server.app(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    bound_port = runner.addresses[0][1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if exit_on_stdin_eof:  # the parent (FakeLLM) died or closed our stdin: shut down

        def on_stdin() -> None:
            if not os.read(0, 65536):
                loop.remove_reader(0)
                stop.set()

        loop.add_reader(0, on_stdin)
    print(f"READY http://{host}:{bound_port}/v1", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: ``--port N [--latency-ms X] [--config JSON]``."""
    from pydantic import ValidationError

    from streaming_agents.testing.fake_llm_script import FakeLLMConfig, Script

    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible LLM server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=None)
    parser.add_argument("--config", default=None, help="FakeLLMConfig as JSON")
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        raw: Any = json.loads(args.config) if args.config else {}
        if not isinstance(raw, dict):
            raise ValueError("--config must be a JSON object")
        if args.latency_ms is not None:
            raw["latency_ms"] = args.latency_ms
        config = FakeLLMConfig.model_validate(raw)
    except (ValueError, ValidationError) as exc:
        print(f"fake_llm: invalid config: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_run(args.host, args.port, Script(config), args.exit_on_stdin_eof))
    return 0


# --------------------------------------------------------------------------- client


class FakeLLM:
    """Runs the fake LLM server in a subprocess and drives its admin API.

    ``config`` is a :class:`FakeLLMConfig` as a dict; ``latency_ms`` overrides
    its ``latency_ms``.  Use as a context manager or call :meth:`start` and
    :meth:`stop`.
    """

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        latency_ms: float | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        startup_timeout_s: float = 15.0,
    ) -> None:
        self._config = dict(config or {})
        self._latency_ms = latency_ms
        self._port = port
        self._host = host
        self._startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None
        self._base_url: str | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # lifecycle -------------------------------------------------------------

    def start(self) -> FakeLLM:
        """Start the server; raise :class:`InfrastructureError` if it is not READY in time."""
        if self._proc is not None:
            return self
        cmd = [sys.executable, "-m", _MODULE, "--host", self._host, "--port", str(self._port)]
        cmd.append("--exit-on-stdin-eof")
        if self._latency_ms is not None:
            cmd += ["--latency-ms", str(self._latency_ms)]
        if self._config:
            cmd += ["--config", json.dumps(self._config)]
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(
            target=self._drain, args=(self._proc, lines), daemon=True, name="fake-llm-stdout"
        ).start()
        try:
            line = lines.get(timeout=self._startup_timeout_s)
        except queue.Empty:
            line = None
        if not line or not line.startswith("READY "):
            tail = self._stderr_tail()
            self.stop()
            raise InfrastructureError(
                f"fake LLM did not print READY within {self._startup_timeout_s:g} s "
                f"(got {line!r}); stderr:\n{tail}"
            )
        self._base_url = line.split(" ", 1)[1].strip()
        return self

    @staticmethod
    def _drain(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        """Forward stdout lines (the first one is READY) and keep the pipe empty."""
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s)."""
        proc, self._proc, self._base_url = self._proc, None, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # properties ------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, the ``api_base`` to give LLM clients."""
        if self._base_url is None:
            raise InfrastructureError("fake LLM is not running; call start() first")
        return self._base_url

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self.base_url.rsplit(":", 1)[1].split("/", 1)[0])

    # admin API -------------------------------------------------------------

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        root = self.base_url.removesuffix("/v1")
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(root + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(req, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            if exc.code == 400:
                raise ConfigError(f"fake LLM rejected {method} {path}: {detail}") from exc
            raise InfrastructureError(
                f"fake LLM {method} {path}: HTTP {exc.code} {detail}"
            ) from exc
        except OSError as exc:
            raise InfrastructureError(f"fake LLM {method} {path} failed: {exc}") from exc

    def stats(self) -> dict[str, Any]:
        """Counters: requests_total, requests_distinct, in_flight, max_concurrent,
        by_status, chat_total, embeddings_total."""
        result: dict[str, Any] = self._call("GET", "/_admin/stats")
        return result

    def reset(self) -> None:
        """Zero the counters, the distinct set and the request ring; re-seed the RNG."""
        self._call("POST", "/_admin/reset", {})

    def configure(self, config: Mapping[str, Any]) -> None:
        """Replace the whole config (latency, faults, rules); raise ConfigError if invalid."""
        self._call("POST", "/_admin/config", dict(config))

    def config(self) -> dict[str, Any]:
        """The config in force."""
        result: dict[str, Any] = self._call("GET", "/_admin/config")
        return result

    def requests(self, last: int = 100) -> list[Any]:
        """The last ``last`` request bodies (parsed JSON), oldest first."""
        result: list[Any] = self._call("GET", f"/_admin/requests?last={int(last)}")
        return result

    def authorizations(self) -> list[dict[str, Any]]:
        """``{"authorization", "model", "count"}`` per header and model since the last reset."""
        result: list[dict[str, Any]] = self._call("GET", "/_admin/authorizations")
        return result

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Block until no request is in flight (e.g. after a cancelled batch)."""
        deadline = time.monotonic() + timeout_s
        while self.stats()["in_flight"] > 0:
            if time.monotonic() > deadline:
                raise InfrastructureError(f"fake LLM still busy after {timeout_s:g} s")
            time.sleep(0.02)


if __name__ == "__main__":
    sys.exit(main())
