"""The classify stage and the HTTP status classifier: every failure gets a reason from a bounded set."""

from __future__ import annotations

import random
from typing import get_args

import pytest
from jinja2.sandbox import SandboxedEnvironment

from notifiers.base import DeliveryError, SendFailure, http_status_failure, raise_for_http_status
from statusd.core.errors import NotifyError, StatusdError, ValidationError
from statusd.notify.failure import Failure, Reason, RenderError, UnknownNotifier, classify
from statusd.notify.retry import RetryPolicy


def test_every_reason_a_notifier_can_name_is_a_reason_the_outbox_counts() -> None:
    assert set(get_args(SendFailure)) <= {reason.value for reason in Reason}


@pytest.mark.parametrize(("exc", "reason", "retryable", "error"), [
    pytest.param(DeliveryError("no answer within 10s", retryable=True, reason="timeout"), Reason.TIMEOUT, True,
                 "no answer within 10s", id="delivery-error-timeout"),
    pytest.param(DeliveryError("answered HTTP 410", retryable=False, reason="http_4xx"), Reason.HTTP_4XX, False,
                 "answered HTTP 410", id="delivery-error-4xx"),
    pytest.param(DeliveryError("refused", retryable=True, reason="rejected"), Reason.REJECTED, True, "refused",
                 id="delivery-error-rejected-temporarily"),
    pytest.param(NotifyError("telegram sendMessage: no answer", retryable=True), Reason.UNKNOWN, True,
                 "telegram sendMessage: no answer", id="notify-error-without-reason"),
    pytest.param(NotifyError("x", retryable=False), Reason.UNKNOWN, False, "x", id="notify-error-permanent"),
    pytest.param(RenderError("template 'alert' failed"), Reason.RENDER, False, "template 'alert' failed",
                 id="render"),
    pytest.param(UnknownNotifier("old"), Reason.UNCONFIGURED, False, "no notifier named 'old' is configured",
                 id="unconfigured"),
    pytest.param(ValidationError("recipient", "bad"), Reason.UNKNOWN, False, "recipient: bad",
                 id="other-statusd-error"),
    pytest.param(RuntimeError("token=s3cr3t"), Reason.INTERNAL, True, "internal error: RuntimeError",
                 id="notifier-bug-text-not-kept"),
])
def test_classify(exc: Exception, reason: Reason, retryable: bool, error: str) -> None:
    assert classify(exc) == Failure(reason, retryable, error)


@pytest.mark.parametrize(("source", "error"), [
    pytest.param("{{ 1 // 0 }}", "line 1 failed: ZeroDivisionError", id="division-by-zero"),
    pytest.param("{{ 'x' + 1 }}", "line 1 failed: TypeError", id="type-mismatch"),
    pytest.param("\n\n{{ '%d' % 'x' }}", "line 3 failed: TypeError", id="on-line-three"),
])
def test_a_plain_python_error_raised_by_a_template_is_a_render_failure_never_retried(source: str, error: str) -> None:
    environment = SandboxedEnvironment()
    with pytest.raises(Exception) as raised:
        environment.from_string(source).render()
    failure = classify(raised.value)
    assert (failure.reason, failure.retryable) == (Reason.RENDER, False)
    assert failure.error == f"template <template> {error}"


@pytest.mark.parametrize("named", ["https://hooks.example/T0KEN", "Timeout", "", 7, None],
                         ids=["an-address", "wrong-case", "empty", "not-a-string", "none"])
def test_a_reason_outside_the_set_is_unknown_never_a_label_of_its_own(named: object) -> None:
    exc = NotifyError("failed", retryable=True)
    exc.reason = named  # type: ignore[attr-defined]  # a third-party notifier's own idea of a reason
    assert classify(exc).reason is Reason.UNKNOWN


@pytest.mark.parametrize(("status", "expected"), [
    pytest.param(200, None, id="200"),
    pytest.param(204, None, id="204"),
    pytest.param(299, None, id="299"),
    pytest.param(301, ("http_3xx", False), id="301-redirect"),
    pytest.param(307, ("http_3xx", False), id="307-redirect"),
    pytest.param(400, ("http_4xx", False), id="400"),
    pytest.param(401, ("http_4xx", False), id="401"),
    pytest.param(404, ("http_4xx", False), id="404"),
    pytest.param(408, ("timeout", True), id="408-request-timeout"),
    pytest.param(410, ("http_4xx", False), id="410"),
    pytest.param(429, ("rate_limited", True), id="429"),
    pytest.param(500, ("http_5xx", True), id="500"),
    pytest.param(503, ("http_5xx", True), id="503"),
    pytest.param(599, ("http_5xx", True), id="599"),
])
def test_http_status_failure(status: int, expected: tuple[str, bool] | None) -> None:
    assert http_status_failure(status) == expected


def test_raise_for_http_status_raises_the_reason_with_a_short_single_line_snippet() -> None:
    raise_for_http_status(204, "", "webhook http://127.0.0.1")  # no exception
    with pytest.raises(DeliveryError) as caught:
        raise_for_http_status(503, "busy\n" + "x" * 500, "webhook http://127.0.0.1")
    assert (caught.value.reason, caught.value.retryable) == ("http_5xx", True)
    assert str(caught.value).startswith("webhook http://127.0.0.1 answered HTTP 503: busy x") and "\n" not in str(
        caught.value) and len(str(caught.value)) < 260


def test_the_recorded_error_leads_with_the_reason() -> None:
    assert Failure(Reason.HTTP_5XX, True, "webhook http://h answered HTTP 503").recorded() == \
        "http_5xx: webhook http://h answered HTTP 503"


@pytest.mark.parametrize(("attempts", "retryable", "retries"), [
    pytest.param(1, True, True, id="first-attempt-retryable"),
    pytest.param(2, True, True, id="before-the-last"),
    pytest.param(3, True, False, id="the-last-attempt"),
    pytest.param(4, True, False, id="past-the-last"),
    pytest.param(1, False, False, id="permanent"),
])
def test_retry_policy_retries(attempts: int, retryable: bool, retries: bool) -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.retries(attempts, retryable) is retries
    assert policy.delay_s(attempts, random.Random(0)) > 0


def test_statusd_errors_stay_statusd_errors() -> None:
    assert issubclass(RenderError, StatusdError) and issubclass(UnknownNotifier, StatusdError)
    assert issubclass(DeliveryError, NotifyError)
