"""Session fixtures: the real parts every test talks to.

They live in streaming_agents.testing so users can load them in their own
suites with ``pytest_plugins = ["streaming_agents.testing.fixtures"]``.
"""

import os
import sys
import traceback
from collections.abc import Generator

import pytest

pytest_plugins = ["streaming_agents.testing.fixtures"]


@pytest.fixture(scope="session", autouse=True)
def _test_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Set before any JVM or cluster starts, so Flink workers see it too.

    The API key agents in tests read, and a journal directory of this session
    only: a journal left by an earlier run would answer this run's LLM calls.
    """
    os.environ.setdefault("FAKE_LLM_API_KEY", "sk-fake-test-key")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    journal_dir = tmp_path_factory.mktemp("journal")
    os.environ["STREAMING_AGENTS_JOURNAL_DIR"] = str(journal_dir)


_exit_status = 0


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Generator[None]:
    """Keep the exit status, and show a failure of the end-of-session summary.

    Without this, an exception raised while pytest prints its summary went
    straight to ``pytest_unconfigure`` below and its ``os._exit``: the log
    simply stopped mid-summary (seen in CI), with no traceback.
    """
    global _exit_status
    _exit_status = int(exitstatus)
    try:
        return (yield)
    except BaseException:
        print("conftest: the end-of-session summary failed:", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        raise


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without the interpreter's teardown, keeping pytest's exit status.

    Every fixture has been torn down and the summary printed by now.  What is
    left are native threads of PyFlink's embedded JVM (py4j gateway, pemja)
    and litellm's clients; tearing the interpreter down under them crashed
    with a segmentation fault *after* a green run (seen in CI), turning the
    run red.  ``os._exit`` skips only that teardown.
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        config.get_terminal_writer().flush()  # the "N passed" line may still be buffered there
        counts = {
            k: len(reporter.stats.get(k, [])) for k in ("passed", "failed", "error", "skipped")
        }
        # A closing line of our own, whatever happened to pytest's.
        print(
            f"suite: {counts['passed']} passed, {counts['failed'] + counts['error']} failed, "
            f"{counts['skipped']} skipped",
            flush=True,
        )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)
