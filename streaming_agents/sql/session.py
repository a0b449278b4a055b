"""Run SQL scripts with ``CREATE MODEL / TOOL / AGENT`` next to ordinary Flink SQL.

Every statement is either one of ours (kept in the session's catalog), a
``SET``, or Flink SQL, in which ``AI_RUN_AGENT`` / ``AI_COMPLETE`` /
``ML_PREDICT`` calls are rewritten first (:mod:`streaming_agents.sql.rewrite`).
Each ``INSERT`` (or statement set) is one Flink job; ``SELECT`` results are
printed.  Jobs with an agent run in PyFlink's thread mode, jobs with
``AI_COMPLETE`` in process mode (async scalar functions need it), so the two
cannot share a job.  Errors name the statement (number, line) and are
:class:`~streaming_agents.sql.lexer.SqlScriptError`; a job that fails is
:class:`SqlJobFailed`.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from streaming_agents.journal.factory import as_journal_uri, check_journal_uri, journal_uri
from streaming_agents.sql.agentcall import map_entries
from streaming_agents.sql.catalog import Catalog, SqlModel
from streaming_agents.sql.check import NO_CONNECTOR, TOOL_INVOKE
from streaming_agents.sql.ddl import is_own_ddl, parse_ddl
from streaming_agents.sql.embeddings import embedding_function
from streaming_agents.sql.functions import completion_function
from streaming_agents.sql.jobwatch import JobWatcher, free_port, job_settings, worker_pythonpath
from streaming_agents.sql.jsonjobs import JsonSources
from streaming_agents.sql.jsonsource import JsonSource, plan_json_source
from streaming_agents.sql.lexer import (
    SqlScriptError,
    Statement,
    ident_value,
    split_statements,
    substitute,
    tokenize,
)
from streaming_agents.sql.outcome import (
    SqlJobFailed,
    StatementResult,
    done_message,
    flink_message,
    wait_for_jobs,
)
from streaming_agents.sql.remote import RemoteTarget
from streaming_agents.sql.rewrite import rewrite_laterals, rewrite_scalars
from streaming_agents.sql.support import ctas, table_without_connector, unsupported
from streaming_agents.sql.tally import AI, INPUT, Tally
from streaming_agents.sql.tally_kafka import RemoteTally
from streaming_agents.sql.toolinvoke import tool_invoke_function
from streaming_agents.sql.views import ViewBuilder

__all__ = ["SqlJobFailed", "SqlSession", "StatementResult", "run_sql_script"]

_MODE = "python.execution-mode"
_PYTHONPATH = "python.pythonpath"
_THREAD_ONLY = "not supported for 'thread' mode"


class SqlSession:
    """A ``StreamTableEnvironment`` plus the models, tools and agents a script defines."""

    def __init__(
        self,
        t_env: Any = None,
        *,
        journal_dir: str | Path | None = None,
        base_dir: str | Path | None = None,
        out: IO[str] | None = None,
        err: IO[str] | None = None,
        concurrency: int = 100,
        journal: str | None = None,
        restart_attempts: int = 3,
        remote: RemoteTarget | None = None,
        tally_dir: str | Path | None = None,
        remote_tally: RemoteTally | None = None,
    ) -> None:
        if t_env is None:
            t_env = default_table_env(restart_attempts=restart_attempts)
        self.t_env = t_env
        self.base_dir = Path(base_dir).resolve() if base_dir else None
        self.catalog = Catalog(self.base_dir)
        self.out = out
        self.err = err if err is not None else sys.stderr
        # one URI for every agent and model of the script, resolved by the journal factory on
        # the workers: sqlite:///dir (<dir>/<agent>.sqlite), kafka://bootstrap/topic or none
        setting = journal or (str(journal_dir) if journal_dir else None)
        self.journal_uri = journal_uri(as_journal_uri(setting) if setting else None)
        check_journal_uri(self.journal_uri)
        self.results: list[StatementResult] = []
        # where the jobs count records, dead letters and FAILED AI rows: a local folder, or
        # with remote workers a Kafka topic decided when the first job needs it
        self.tally_dir = str(Path(tally_dir).resolve()) if tally_dir and remote is None else None
        self.remote_tally = remote_tally if remote is not None else None
        self._job_statement: Statement | None = None  # the statement set being built
        self._agent_views: set[str] = set()
        self._completion_views: set[str] = set()
        self._functions: dict[str, str] = {}
        self._count = 0
        self._token = uuid.uuid4().hex[:6]  # names of helper views/functions are per session
        self.uids: set[str] = set()  # agent operator uids: stable in script order
        self._statement_set: list[Statement] | None = None
        self.json = JsonSources(t_env, self._token)  # Kafka JSON tables (read safely)
        config = t_env.get_config()
        if config.get("table.exec.async-scalar.max-concurrent-operations", None) is None:
            config.set("table.exec.async-scalar.max-concurrent-operations", str(concurrency))
        if config.get("table.exec.async-scalar.timeout", None) is None:
            config.set("table.exec.async-scalar.timeout", "10 min")
        files = list(remote.python_files) if remote is not None else []
        if self.base_dir is not None:
            sys.path.insert(0, str(self.base_dir))
            files.append(str(self.base_dir))
        if files:
            config.set("python.files", ",".join(files))
        self.remote = remote
        self._rest_url: str | None = None
        if remote is not None:  # the cluster's own Python and site-packages, nothing of ours
            config.set(_PYTHONPATH, remote.worker_pythonpath)
            self.watcher: JobWatcher | None = JobWatcher(
                self.err, restart_attempts=_attempts(config)
            )
            self._rest_url = remote.rest_url
        else:
            # thread-mode workers import streaming_agents from any working folder
            config.set(_PYTHONPATH, worker_pythonpath(config.get(_PYTHONPATH, None)))
            self.watcher = _watcher(config, self.err)

    # -- helpers used by the view builder --------------------------------------------------

    def _say(self, text: str) -> None:
        if self.out is not None:
            print(text, file=self.out, flush=True)

    def warn(self, message: str) -> None:
        """A warning for the script's author, on ``err`` (stderr for the CLI)."""
        print(f"warning: {message}", file=self.err, flush=True)

    def model(self, name: str, statement: Statement) -> SqlModel:
        found = self.catalog.models.get(name)
        if found is None:
            models = sorted(self.catalog.models) or "none"
            raise statement.error(f"no model {name!r} (models: {models})")
        return found

    def tally(self, statement: Statement, kind: str) -> Tally | None:
        """Where a counting function of ``statement`` writes (None: no counts kept)."""
        plan = self.remote_tally
        target = self.tally_dir if plan is None else self._remote_tally_target(plan)
        if target is None:
            return None
        statement = self._job_statement or statement  # a statement set counts as one
        return Tally(target, statement.number, statement.line, kind)

    def _remote_tally_target(self, plan: RemoteTally) -> str | None:
        """The remote run's tally topic, on the Kafka journal's broker or the tables' one."""
        found = [urlsplit(self.journal_uri).netloc] if self.journal_uri.startswith("kafka:") else []
        found += [
            t.options.get("properties.bootstrap.servers", "") for t in self.json.tables.values()
        ]
        return plan.resolve([b for b in found if b])

    def journal(self, name: str) -> str:
        """The journal setting of agent ``name``: the script's URI (opened on the workers)."""
        return self.journal_uri

    def completion_function(
        self, model_name: str, statement: Statement, *, embedding: bool | None = None
    ) -> str:
        """The name of ``model_name``'s function (registered on first use).

        ``embedding``: True for ``AI_EMBEDDING``, False for ``AI_COMPLETE``,
        None for ``ML_PREDICT`` (either, by the model's task).
        """
        model = self.model(model_name, statement)
        if embedding is not None and embedding != model.embedding:
            wanted = "an embedding" if embedding else "a text generation"
            function = "AI_EMBEDDING" if embedding else "AI_COMPLETE"
            raise statement.error(
                f"{function} needs {wanted} model; {model_name!r} has 'task' = {model.task!r}"
            )
        # one function per model and statement: its calls are counted for that statement
        key = f"{model_name}\0{statement.number}"
        if key not in self._functions:
            name = f"sa_complete_{self._token}_{len(self._functions) + 1}"
            tally = self.tally(statement, AI)
            if model.embedding:
                function = embedding_function(model.spec, name=name, tally=tally)
            else:
                function = completion_function(
                    model.spec,
                    name=name,
                    system_prompt=model.system_prompt,
                    output=model.output,
                    journal=self.journal_uri if model.journal else None,
                    journal_name=f"complete-{model_name}",
                    tally=tally,
                )
            self.t_env.create_temporary_function(name, function)
            self._functions[key] = name
        return self._functions[key]

    def tool_invoke_function(self, model_name: str, statement: Statement, args: list[str]) -> str:
        """Register the function of one ``AI_TOOL_INVOKE`` call site; its name."""
        model = self.model(model_name, statement)
        try:
            function_tools = list(map_entries(args[2], statement.line) or {})
            mcp_tools = list(map_entries(args[3], statement.line) or {})
        except SqlScriptError as exc:
            raise statement.error(f"AI_TOOL_INVOKE: {exc}") from None
        tools = self.catalog.invoke_tools(model, function_tools, mcp_tools, statement)
        name = f"sa_tools_{self._token}_{len(self._functions) + 1}"
        function = tool_invoke_function(
            model.spec,
            tools,
            name=name,
            system_prompt=model.system_prompt,
            tally=self.tally(statement, AI),
        )
        self.t_env.create_temporary_function(name, function)
        self._functions[name] = name
        return name

    def query(self, text: str, statement: Statement) -> Any:
        try:
            return self.t_env.sql_query(text)
        except Exception as exc:  # noqa: BLE001 - Py4J/PyFlink raise many unrelated types
            raise statement.error(flink_message(exc, statement, True)) from None

    def register_view(self, table: Any, *, agents: bool) -> str:
        self._count += 1
        name = f"sa_view_{self._token}_{self._count}"
        self.t_env.create_temporary_view(name, table)
        (self._agent_views if agents else self._completion_views).add(name)
        return name

    # -- statements --------------------------------------------------------------------------

    def execute(
        self, script: str, variables: dict[str, str] | None = None
    ) -> list[StatementResult]:
        """Run every statement of ``script`` (``${var}`` substituted); jobs are not awaited."""
        done = [self.execute_statement(s) for s in split_statements(substitute(script, variables))]
        if self._statement_set is not None:
            raise SqlScriptError("BEGIN STATEMENT SET without END at the end of the script")
        return [r for r in done if r is not None]

    def execute_statement(self, statement: Statement) -> StatementResult | None:
        words = [w.upper for w in statement.words]
        if self._statement_set is not None:
            if words == ["END"]:
                inner, self._statement_set = self._statement_set, None
                return self._record(self._run_set(statement, inner))
            if words[0] != "INSERT":
                raise statement.error("only INSERT statements belong in a statement set")
            self._statement_set.append(statement)
            return None
        if words[:3] == ["BEGIN", "STATEMENT", "SET"]:
            self._statement_set = []
            return None
        if words[:4] == ["EXECUTE", "STATEMENT", "SET", "BEGIN"]:
            return self._record(self._run_set(statement, statement.inner_statements()))
        if is_own_ddl(statement):
            message = self.catalog.apply(parse_ddl(statement), statement)
            return self._record(StatementResult(statement.number, statement.line, "ddl", message))
        if words[0] == "SET" and "=" in statement.text:
            key, _, value = statement.text[3:].partition("=")
            key, value = key.strip().strip("'`\""), value.strip().strip("'\"")
            if key == "sql.state-ttl":  # Confluent's name: Flink's state TTL, agents' memory TTL
                self.catalog.state_ttl = value
                key = "table.exec.state.ttl"
            self.t_env.get_config().set(key, value)
            return self._record(StatementResult(statement.number, statement.line, "set", key))
        planned = plan_json_source(statement) if words[0] == "CREATE" else None
        if isinstance(planned, JsonSource):
            message = self.json.create(statement, planned)
            return self._record(StatementResult(statement.number, statement.line, "ddl", message))
        if planned is not None:
            self.warn(
                f"statement {statement.number} (line {statement.line}): {planned}: a record it "
                "cannot parse fails the job (see docs/sql.md, Kafka JSON tables)"
            )
        self._refuse_unsupported(statement)
        self.catalog.note_function(statement)
        if self.json.read_by(statement, ""):
            self._set_mode([statement])  # before the decoding operators are built
            self.json.build_read(statement, self.tally(statement, INPUT))
        text, uses = self._rewrite(statement)
        kind = "query" if words[0] in ("SELECT", "WITH", "VALUES") else "statement"
        if words[0] == "INSERT" or words[:2] == ["EXECUTE", "INSERT"] or ctas(statement):
            kind = "insert"  # a job: awaited
        sources = self.json.read_by(statement, text)
        submit: Any = lambda: self.t_env.execute_sql(text)  # noqa: E731
        if sources and kind == "insert" and words[0] == "INSERT":  # dead letters in the same job
            submit = lambda: self.json.execute([text], sources, statement.number)  # noqa: E731
        elif sources and kind in ("insert", "query"):
            self._companion(statement, sources)
        result = self._run(statement, submit, uses)
        record = StatementResult(
            statement.number,
            statement.line,
            kind,
            done_message(kind, result, [w.text for w in statement.words]),
            result,
        )
        if words[0] == "CREATE" and "VIEW" in words[:4]:
            view = statement.words[words.index("VIEW") + 1]
            name = view.text.strip("`")
            self.json.note_view(name, sources)
            if uses[0]:
                self._agent_views.add(name)
            if uses[1]:
                self._completion_views.add(name)
        if kind == "query":
            self._print_rows(statement, result, record)
        return self._record(record)

    def _print_rows(self, statement: Statement, result: Any, record: StatementResult) -> None:
        """Collect a SELECT's rows and print them; a failure is :class:`SqlJobFailed`."""
        from streaming_agents.sql.jobwatch import root_cause

        try:
            with result.collect() as rows:
                for row in rows:
                    record.rows.append(row)
                    self._say(f"{row.get_row_kind()} {list(row)}")
        except Exception as exc:  # noqa: BLE001 - Py4J/PyFlink raise many unrelated types
            raise SqlJobFailed(
                f"statement {statement.number} (line {statement.line}): query failed: "
                f"{root_cause(str(exc))}"
            ) from None

    def _refuse_unsupported(self, statement: Statement) -> None:
        reason = unsupported(statement, tool_invoke=TOOL_INVOKE)
        if reason is None and table_without_connector(statement):
            reason = NO_CONNECTOR
        if reason is not None:
            raise statement.error(reason)

    def _record(self, result: StatementResult) -> StatementResult:
        self.results.append(result)
        client = result.table_result.get_job_client() if result.kind == "insert" else None
        if client is not None and self.watcher is not None and self._rest_url:
            job_id = str(client.get_job_id())
            self.watcher.watch(result.number, result.line, job_id, self._rest_url)
        if result.message:
            self._say(f"[{result.number}] {result.message}")
        return result

    def _rewrite(self, statement: Statement) -> tuple[str, tuple[bool, bool]]:
        builder = ViewBuilder(self, statement)
        try:
            text = rewrite_laterals(statement.text, builder, statement.line)
            text = rewrite_scalars(
                text,
                lambda m, line: self.completion_function(m, statement, embedding=False),
                statement.line,
                lambda m, line: self.completion_function(m, statement, embedding=True),
                lambda m, line, args: self.tool_invoke_function(m, statement, args),
            )
        except SqlScriptError as exc:
            if str(exc).startswith("statement "):
                raise
            raise statement.error(str(exc)) from None
        text = self.json.retarget(text)
        names = {ident_value(t) for t in tokenize(text) if t.kind in ("ident", "qident")}
        agents = builder.uses_agents or bool(names & self._agent_views)
        completions = builder.uses_completions or bool(
            names & (self._completion_views | set(self._functions.values()))
        )
        return text, (agents, completions)

    # -- Kafka JSON sources (see streaming_agents.sql.jsonsource) -----------------------------

    def _set_mode(self, statements: list[Statement]) -> None:
        """Set the Python execution mode ``_run`` will set for these statements' job.

        Read from the statements before their rewrite: ``AI_RUN_AGENT`` or an agent
        view -> thread, a completion function or view -> process, else unchanged.
        """
        names = {
            ident_value(t).lower()
            for s in statements
            for t in s.tokens
            if t.kind in ("ident", "qident")
        }
        agents = {v.lower() for v in self._agent_views} | {"ai_run_agent"}
        completions = {
            *(v.lower() for v in (*self._completion_views, *self._functions.values())),
            *("ai_complete", "ai_embedding", "ml_predict", "ai_tool_invoke"),
        }
        if names & agents:
            self.t_env.get_config().set(_MODE, "thread")
        elif names & completions:
            self.t_env.get_config().set(_MODE, "process")

    def _companion(self, statement: Statement, sources: list[JsonSource]) -> None:
        """A job writing the dead letters of the JSON sources a SELECT or CTAS reads."""
        number = statement.number
        result = self._run(
            statement, lambda: self.json.execute([], sources, number), (False, False)
        )
        names = ", ".join(s.name for s in sources)
        message = f"dead letters of {names}: {done_message('insert', result, [])}"
        self._record(StatementResult(statement.number, statement.line, "insert", message, result))

    def _run(self, statement: Statement, submit: Any, uses: tuple[bool, bool]) -> Any:
        agents, completions = uses
        if agents and completions:
            raise statement.error(
                "AI_COMPLETE and AI_RUN_AGENT cannot run in one job (PyFlink runs async "
                "functions only in process mode, the agent operator in thread mode); write "
                "the completions to a table in one INSERT and run the agent in another"
            )
        config = self.t_env.get_config()
        if agents:
            config.set(_MODE, "thread")
        elif completions:
            config.set(_MODE, "process")
        config.set("pipeline.name", f"sql statement {statement.number} (line {statement.line})")
        if self.watcher is not None and self.remote is None:  # a mini-cluster per job: a port
            port = str(free_port())
            config.set("rest.bind-port", port)
            config.set("rest.port", port)
            self._rest_url = f"http://127.0.0.1:{port}"
        rewritten = agents or completions
        try:
            return submit()
        except Exception as exc:  # noqa: BLE001 - Py4J/PyFlink raise many unrelated types
            message = flink_message(exc, statement, rewritten)
            if _THREAD_ONLY in message and not agents:
                config.set(_MODE, "process")  # a user's async UDF: process mode works
                try:
                    return submit()
                except Exception as again:  # noqa: BLE001
                    message = flink_message(again, statement, rewritten)
            raise statement.error(message) from None

    def _run_set(self, statement: Statement, inner: list[Statement]) -> StatementResult:
        statement_set = self.t_env.create_statement_set()
        agents = completions = False
        sources: list[JsonSource] = []
        if any(self.json.read_by(item, "") for item in inner):
            self._set_mode(inner)  # before the decoding operators are built
        self._job_statement = statement
        try:
            for item in inner:
                self._refuse_unsupported(item)
                self.json.build_read(item, self.tally(statement, INPUT))
                text, (a, c) = self._rewrite(item)
                agents, completions = agents or a, completions or c
                sources += [s for s in self.json.read_by(item, text) if s not in sources]
                try:
                    statement_set.add_insert_sql(text)
                except Exception as exc:  # noqa: BLE001
                    raise item.error(flink_message(exc, item, a or c)) from None
        finally:
            self._job_statement = None
        for source in sources:
            statement_set.add_insert_sql(source.dead_letter_insert(statement.number))
        result = self._run(statement, statement_set.execute, (agents, completions))
        message = done_message("insert", result, ["STATEMENT", "SET"])
        return StatementResult(statement.number, statement.line, "insert", message, result)

    def wait(self, timeout_s: float | None = None) -> None:
        """Wait for every job the session started (bounded jobs end; others run on)."""
        try:
            wait_for_jobs(self.results, timeout_s, self.watcher)
        finally:
            if self.watcher is not None:
                self.watcher.stop()


def default_table_env(
    restart_attempts: int = 3, restart_delay_s: float = 2.0, **local_env_args: Any
) -> Any:
    """A ``StreamTableEnvironment`` on :func:`local_env` with a restart budget and a REST port."""
    from pyflink.table import StreamTableEnvironment

    from streaming_agents.runtime.environment import local_env

    # before the JVM starts: its workers inherit it (LiteLLM logs DEBUG lines otherwise)
    os.environ.setdefault("LITELLM_LOG", "WARNING")
    extra = dict(local_env_args.pop("extra_config", None) or {})
    extra = {**job_settings(restart_attempts, restart_delay_s, free_port()), **extra}
    return StreamTableEnvironment.create(local_env(extra_config=extra, **local_env_args))


def _watcher(config: Any, err: IO[str]) -> JobWatcher | None:
    """A watcher of the mini-cluster's REST API when the environment names a fixed port."""
    port = str(config.get("rest.bind-port", None) or config.get("rest.port", None) or "")
    if not port.isdigit() or port == "0":
        return None
    return JobWatcher(err, restart_attempts=_attempts(config))


def _attempts(config: Any) -> int | None:
    """The restart budget the configuration sets (None: Flink's default)."""
    if config.get("restart-strategy.type", None) == "fixed-delay":
        return int(config.get("restart-strategy.fixed-delay.attempts", "0") or 0)
    if config.get("restart-strategy.type", None) == "none":
        return 0
    return None


def run_sql_script(
    text: str,
    *,
    t_env: Any = None,
    variables: dict[str, str] | None = None,
    wait: bool = True,
    journal_dir: str | Path | None = None,
    base_dir: str | Path | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    restart_attempts: int = 3,
    remote: RemoteTarget | None = None,
    journal: str | None = None,
    tally_dir: str | Path | None = None,
    remote_tally: RemoteTally | None = None,
) -> SqlSession:
    """Run a script (see :class:`SqlSession`); with ``wait`` block until its jobs end.

    Without ``t_env`` a local mini-cluster environment is used
    (:func:`~streaming_agents.runtime.environment.local_env`: checkpointing on,
    exactly-once, the Kafka connector on the class path) with a restart budget
    of ``restart_attempts`` (then the job fails and :class:`SqlJobFailed` is
    raised with its root cause); every task failure is printed to ``err``.
    ``remote`` (:func:`streaming_agents.sql.remote.prepare_remote`, with a
    ``t_env`` from :func:`~streaming_agents.sql.remote.remote_table_env`)
    sends the jobs to a standalone cluster with what its workers need.
    ``tally_dir``: a local folder where the jobs count their records, dead
    letters and FAILED AI rows (:mod:`streaming_agents.sql.tally`; not with
    ``remote``); ``remote_tally``: with ``remote``, where they count instead
    (a Kafka topic, :class:`~streaming_agents.sql.tally_kafka.RemoteTally`).
    """
    session = SqlSession(
        t_env,
        journal_dir=journal_dir,
        base_dir=base_dir,
        out=out,
        err=err,
        restart_attempts=restart_attempts,
        remote=remote,
        journal=journal,
        tally_dir=tally_dir,
        remote_tally=remote_tally,
    )
    session.execute(text, variables)
    if wait:
        session.wait()
    return session
