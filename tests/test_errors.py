"""The exception hierarchy separates user mistakes from runtime failures and pickles."""

import pickle

import pytest

from streaming_agents import errors


@pytest.mark.parametrize("name", errors.__all__)
def test_every_error_survives_pickling(name: str) -> None:
    cls = getattr(errors, name)
    exc = cls("something broke: key=k1")
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is cls
    assert str(clone) == "something broke: key=k1"


def test_branches() -> None:
    assert issubclass(errors.ConfigError, errors.UserError)
    for cls in (errors.LLMCallError, errors.UnusableReply, errors.BudgetExceeded):
        assert issubclass(cls, errors.RuntimeFailure)
        assert not issubclass(cls, errors.UserError)
    assert not issubclass(errors.UserError, errors.RuntimeFailure)
