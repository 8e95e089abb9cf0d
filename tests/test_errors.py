"""The exception tree's fields: pure logic."""

from __future__ import annotations

from harness.errors import AgentError, ConfigError, HarnessError, TransportError


def test_code_is_the_class_name_unless_the_raiser_names_it() -> None:
    assert ConfigError("x").code == "ConfigError" and TransportError("x").code == "TransportError"
    assert HarnessError("x", code="lost_link").code == "lost_link"
    assert AgentError("x").code == "agent" and AgentError("x", code="bad_model").code == "bad_model"


def test_detail_and_the_one_line_message() -> None:
    err = AgentError("the device refused UPLOAD_BEGIN: MODEL_TOO_LARGE", code="model_too_large", target="nano",
                     hint="use a smaller model", detail=4096)
    assert err.detail == 4096 and ConfigError("x").detail is None
    assert str(err) == "nano: the device refused UPLOAD_BEGIN: MODEL_TOO_LARGE (fix: use a smaller model)"
