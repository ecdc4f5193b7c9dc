"""The Mechanical Turk client offline: every call goes through botocore's Stubber, which checks the
parameters we send and the responses we feed back against MTurk's real service model. Covered:
each operation the client makes, pagination over several pages, a bonus retried after its answer
was lost (paid once), MTurk refusing a call (one error type with MTurk's code), the ExternalQuestion
XML, and the endpoint chosen by the settings."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber
from pytest_django import Settings

import crowd.mturk
from crowd.mturk import (
    APPROVAL_RATE_QUALIFICATION,
    EXTERNAL_QUESTION_NAMESPACE,
    LOCALE_QUALIFICATION,
    PRODUCTION_ENDPOINT,
    SANDBOX_ENDPOINT,
    BonusPayment,
    MTurkClient,
    MTurkError,
    external_question,
    money,
    qualification_requirement,
    score_at_least,
)

HIT_ID = "3AQN9REUTFGXCRWFMDU3HOMNXZDYD3"
HIT_TYPE_ID = "3X8GW1LKZ7CWXQ1DWX9YDFXS6ZZN3Q"
QUAL_ID = "3SNTKV7VHPC9JEJRZ7C0AOA2ZO7C2W"
WORKER = "A1B2C3D4E5F6G7"
ASSIGNMENT = "3PWWM24LHSX3L2CVEJC3BGB1DNR82H"
TASK_URL = "https://annotate.example.org/crowd/task/7/?batch=3&lang=en"
# What MTurk answers to a UniqueRequestToken it has already carried out (RequestError, this message).
DUPLICATE_MESSAGE = 'The idempotency token "bonus-42" has already been processed. (1626172412406)'
# Every operation the client calls; the test below keeps this list and crowd/mturk.py in step.
STUBBED_OPERATIONS = {
    "create_hit_type",
    "create_hit_with_hit_type",
    "get_hit",
    "update_expiration_for_hit",
    "list_assignments_for_hit",
    "approve_assignment",
    "reject_assignment",
    "send_bonus",
    "create_qualification_type",
    "associate_qualification_with_worker",
    "notify_workers",
    "get_account_balance",
}


@pytest.fixture
def mturk_settings(settings: Settings) -> Settings:
    settings.MTURK_SANDBOX = True
    settings.MTURK_ENDPOINT_URL = ""
    settings.MTURK_ACCESS_KEY_ID = "testing"
    settings.MTURK_SECRET_ACCESS_KEY = "testing"
    return settings


@pytest.fixture
def mturk(mturk_settings: Settings) -> Iterator[tuple[MTurkClient, Stubber]]:
    client = MTurkClient.from_settings()
    with Stubber(client.client) as stub:
        yield client, stub
        # Every response queued was asked for: no call the test expected went missing.
        stub.assert_no_pending_responses()


def hit(**fields: Any) -> dict[str, Any]:
    return {
        "HITId": HIT_ID,
        "HITTypeId": HIT_TYPE_ID,
        "HITGroupId": "3J2SXN2AMUR0ZBO5VN2QSCZZ1GZ4RT",
        "CreationTime": datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
        "Title": "One or many instances?",
        "HITStatus": "Assignable",
        "MaxAssignments": 3,
        "Reward": "0.05",
        "Expiration": datetime(2026, 5, 8, 12, 0, tzinfo=UTC),
        **fields,
    }


def assignment(number: int, status: str = "Submitted") -> dict[str, Any]:
    return {
        "AssignmentId": f"3ASSIGNMENT{number:06d}",
        "WorkerId": f"A{number:012d}",
        "HITId": HIT_ID,
        "AssignmentStatus": status,
        "SubmitTime": datetime(2026, 5, 1, 13, number % 60, tzinfo=UTC),
        "Answer": "<QuestionFormAnswers/>",
    }


# --- Endpoints ---------------------------------------------------------------------------------


def test_it_uses_the_sandbox_by_default(mturk_settings: Settings) -> None:
    client = MTurkClient.from_settings()
    assert client.endpoint_url == SANDBOX_ENDPOINT == "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
    assert client.client.meta.region_name == "us-east-1"


def test_it_uses_production_when_the_sandbox_is_off(mturk_settings: Settings) -> None:
    mturk_settings.MTURK_SANDBOX = False
    assert (
        MTurkClient.from_settings().endpoint_url
        == PRODUCTION_ENDPOINT
        == "https://mturk-requester.us-east-1.amazonaws.com"
    )


def test_it_takes_an_explicit_endpoint_over_the_flag(mturk_settings: Settings) -> None:
    mturk_settings.MTURK_SANDBOX = False
    mturk_settings.MTURK_ENDPOINT_URL = "http://127.0.0.1:5999"
    assert MTurkClient.from_settings().endpoint_url == "http://127.0.0.1:5999"


def test_it_stubs_every_operation_the_client_calls() -> None:
    source = Path(crowd.mturk.__file__).read_text()
    called = set(re.findall(r'_call\(\s*"(\w+)"', source)) | set(re.findall(r'get_paginator\("(\w+)"\)', source))
    assert called == STUBBED_OPERATIONS
    client = MTurkClient(crowd.mturk.boto3.client("mturk", region_name="us-east-1"))
    assert all(callable(getattr(client.client, name, None)) for name in called)


# --- HIT types and HITs ------------------------------------------------------------------------


def test_it_creates_a_hit_type_with_qualification_requirements(mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    requirements = [
        score_at_least(QUAL_ID, 80),
        qualification_requirement(APPROVAL_RATE_QUALIFICATION, "GreaterThanOrEqualTo", integer_values=[95]),
        qualification_requirement(LOCALE_QUALIFICATION, "In", countries=["US", "GB"], actions_guarded="Accept"),
    ]
    stub.add_response(
        "create_hit_type",
        {"HITTypeId": HIT_TYPE_ID},
        {
            "Title": "One or many instances?",
            "Description": "Look at the highlighted part and say whether it shows one object or several.",
            "Reward": "0.05",
            "AssignmentDurationInSeconds": 600,
            "AutoApprovalDelayInSeconds": 259200,
            "Keywords": "image,classification,parts",
            "QualificationRequirements": [
                {
                    "QualificationTypeId": QUAL_ID,
                    "Comparator": "GreaterThanOrEqualTo",
                    "IntegerValues": [80],
                    "ActionsGuarded": "DiscoverPreviewAndAccept",
                },
                {
                    "QualificationTypeId": "000000000000000000L0",
                    "Comparator": "GreaterThanOrEqualTo",
                    "IntegerValues": [95],
                    "ActionsGuarded": "DiscoverPreviewAndAccept",
                },
                {
                    "QualificationTypeId": "00000000000000000071",
                    "Comparator": "In",
                    "LocaleValues": [{"Country": "US"}, {"Country": "GB"}],
                    "ActionsGuarded": "Accept",
                },
            ],
        },
    )
    hit_type = client.create_hit_type(
        title="One or many instances?",
        description="Look at the highlighted part and say whether it shows one object or several.",
        reward=Decimal("0.05"),
        assignment_duration_seconds=600,
        auto_approval_delay_seconds=3 * 24 * 3600,
        keywords=["image", " classification ", "parts", ""],
        qualification_requirements=requirements,
    )
    assert hit_type == HIT_TYPE_ID


def test_it_creates_an_external_question_hit(mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    question = external_question(TASK_URL, frame_height=0)
    stub.add_response(
        "create_hit_with_hit_type",
        {"HIT": hit(Question=question, RequesterAnnotation="batch-3")},
        {
            "HITTypeId": HIT_TYPE_ID,
            "Question": question,
            "LifetimeInSeconds": 7 * 24 * 3600,
            "MaxAssignments": 3,
            "RequesterAnnotation": "batch-3",
            "UniqueRequestToken": "hit-batch-3-item-17",
        },
    )
    created = client.create_hit(
        hit_type_id=HIT_TYPE_ID,
        url=TASK_URL,
        lifetime_seconds=7 * 24 * 3600,
        max_assignments=3,
        requester_annotation="batch-3",
        unique_request_token="hit-batch-3-item-17",
    )
    assert created["HITId"] == HIT_ID
    assert created["Question"] == question


def test_it_writes_the_external_question_xml_with_namespace_and_escaping() -> None:
    xml = external_question(TASK_URL, frame_height=640)
    assert "batch=3&amp;lang=en" in xml and "batch=3&lang" not in xml
    root = ET.fromstring(xml)  # noqa: S314 - our own output, parsed to check it
    assert root.tag == f"{{{EXTERNAL_QUESTION_NAMESPACE}}}ExternalQuestion"
    assert EXTERNAL_QUESTION_NAMESPACE == (
        "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd"
    )
    assert [child.tag.split("}")[1] for child in root] == ["ExternalURL", "FrameHeight"]
    assert all(child.tag.startswith(f"{{{EXTERNAL_QUESTION_NAMESPACE}}}") for child in root)
    assert root.find(f"{{{EXTERNAL_QUESTION_NAMESPACE}}}ExternalURL").text == TASK_URL
    assert root.find(f"{{{EXTERNAL_QUESTION_NAMESPACE}}}FrameHeight").text == "640"
    # Markup in a URL stays text.
    tricky = "https://annotate.example.org/t/?q=<b>&x='1'"
    parsed = ET.fromstring(external_question(tricky))  # noqa: S314 - our own output
    assert parsed.find(f"{{{EXTERNAL_QUESTION_NAMESPACE}}}ExternalURL").text == tricky


@pytest.mark.parametrize(
    "url",
    [
        "http://annotate.example.org/task/",
        "https:///no-host",
        "https://annotate.example.org/a b",
        "javascript:alert(1)",
    ],
)
def test_it_refuses_task_urls_mturk_would_not_frame(url: str) -> None:
    with pytest.raises(ValueError):
        external_question(url)


def test_it_gets_a_hit(mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    stub.add_response("get_hit", {"HIT": hit(HITStatus="Reviewable")}, {"HITId": HIT_ID})
    assert client.get_hit(HIT_ID)["HITStatus"] == "Reviewable"


def test_it_expires_a_hit_now_and_moves_an_expiry(mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    later = datetime(2026, 6, 1, tzinfo=UTC)
    stub.add_response("update_expiration_for_hit", {}, {"HITId": HIT_ID, "ExpireAt": epoch})
    stub.add_response("update_expiration_for_hit", {}, {"HITId": HIT_ID, "ExpireAt": later})
    client.expire_hit(HIT_ID)
    client.set_hit_expiration(HIT_ID, expire_at=later)
    with pytest.raises(ValueError):
        client.set_hit_expiration(HIT_ID, expire_at=datetime(2026, 6, 1))  # noqa: DTZ001 - the naive one refused


# --- Assignments -------------------------------------------------------------------------------


def test_it_lists_assignments_of_every_status_over_all_pages(mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    statuses = ["Submitted", "Approved", "Rejected"]
    pages = [
        ([assignment(1), assignment(2, "Approved")], "token-page-2"),
        ([assignment(3, "Rejected"), assignment(4)], "token-page-3"),
        ([assignment(5)], None),
    ]
    previous = None
    for page, next_token in pages:
        expected = {"HITId": HIT_ID, "AssignmentStatuses": statuses, "MaxResults": 2}
        if previous:
            expected["NextToken"] = previous
        response: dict[str, Any] = {"NumResults": len(page), "Assignments": page}
        if next_token:
            response["NextToken"] = next_token
        stub.add_response("list_assignments_for_hit", response, expected)
        previous = next_token
    listed = client.list_assignments(HIT_ID, page_size=2)
    assert [a["AssignmentId"] for a in listed] == [f"3ASSIGNMENT{n:06d}" for n in range(1, 6)]
    assert {a["AssignmentStatus"] for a in listed} == {"Submitted", "Approved", "Rejected"}


def test_it_maps_an_error_on_a_later_page(mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    stub.add_response(
        "list_assignments_for_hit",
        {"NumResults": 1, "Assignments": [assignment(1)], "NextToken": "token-page-2"},
        {"HITId": HIT_ID, "AssignmentStatuses": ["Submitted"], "MaxResults": 100},
    )
    stub.add_client_error("list_assignments_for_hit", "ServiceFault", "Try again.", http_status_code=500)
    with pytest.raises(MTurkError) as caught:
        client.list_assignments(HIT_ID, statuses=["Submitted"])
    assert (caught.value.operation, caught.value.code, caught.value.retryable) == (
        "list_assignments_for_hit",
        "ServiceFault",
        True,
    )


def test_it_approves_with_and_without_feedback(mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    stub.add_response("approve_assignment", {}, {"AssignmentId": ASSIGNMENT, "RequesterFeedback": "Careful work."})
    stub.add_response("approve_assignment", {}, {"AssignmentId": ASSIGNMENT})
    stub.add_response("approve_assignment", {}, {"AssignmentId": ASSIGNMENT, "OverrideRejection": True})
    client.approve_assignment(ASSIGNMENT, feedback="  Careful work. ")
    client.approve_assignment(ASSIGNMENT)
    client.approve_assignment(ASSIGNMENT, override_rejection=True)


def test_it_rejects_only_with_a_reason(mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    reason = "Two of three gold items answered wrongly."
    stub.add_response("reject_assignment", {}, {"AssignmentId": ASSIGNMENT, "RequesterFeedback": reason})
    client.reject_assignment(ASSIGNMENT, feedback=reason)
    with pytest.raises(ValueError):
        client.reject_assignment(ASSIGNMENT, feedback="   ")
    with pytest.raises(ValueError):
        client.reject_assignment(ASSIGNMENT, feedback="x" * 1025)


def test_it_maps_a_refused_call_to_the_platform_error(mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    message = "This operation can be called with a status of: Submitted (1626172412406)"
    stub.add_client_error(
        "reject_assignment",
        service_error_code="RequestError",
        service_message=message,
        http_status_code=400,
        expected_params={"AssignmentId": ASSIGNMENT, "RequesterFeedback": "Wrong part."},
        modeled_fields={"TurkErrorCode": "AWS.MechanicalTurk.InvalidAssignmentState"},
    )
    with pytest.raises(MTurkError) as caught:
        client.reject_assignment(ASSIGNMENT, feedback="Wrong part.")
    error = caught.value
    assert (error.operation, error.code, error.message) == ("reject_assignment", "RequestError", message)
    assert error.turk_error_code == "AWS.MechanicalTurk.InvalidAssignmentState"
    assert not error.retryable and not error.duplicate_request
    assert "AWS.MechanicalTurk.InvalidAssignmentState" in str(error)


def fail_first_call(client: MTurkClient, error: Exception) -> None:
    """Make the client's next call fail with ``error`` where the HTTP request would go out (ahead
    of the Stubber's answer, registered on the same event); later calls are answered as queued."""
    failed: list[bool] = []

    def fail_once(**kwargs: Any) -> None:
        if not failed:
            failed.append(True)
            raise error

    client.client.meta.events.register_first("before-call.*.*", fail_once)


def test_it_maps_a_call_that_never_reached_mturk(mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    stub.add_response("get_account_balance", {"AvailableBalance": "12.30"}, {})
    fail_first_call(client, EndpointConnectionError(endpoint_url=SANDBOX_ENDPOINT))
    with pytest.raises(MTurkError) as caught:
        client.account_balance()
    assert (caught.value.operation, caught.value.code) == ("get_account_balance", "EndpointConnectionError")
    assert caught.value.retryable
    assert client.account_balance() == Decimal("12.30")


# --- Bonuses -----------------------------------------------------------------------------------


def bonus_params(**fields: Any) -> dict[str, Any]:
    return {
        "WorkerId": WORKER,
        "BonusAmount": "0.50",
        "AssignmentId": ASSIGNMENT,
        "Reason": "All gold items right this week.",
        "UniqueRequestToken": "bonus-42",
        **fields,
    }


def pay(client: MTurkClient) -> BonusPayment:
    return client.send_bonus(
        bonus_id=42, worker_id=WORKER, assignment_id=ASSIGNMENT, amount="0.5", reason="All gold items right this week."
    )


def test_it_pays_a_bonus_with_a_token_from_the_bonus_record(mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    stub.add_response("send_bonus", {}, bonus_params())
    assert pay(client) == BonusPayment(token="bonus-42", already_paid=False)


def test_it_pays_a_retried_bonus_once(mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    sent_tokens: list[str] = []

    def record(params: dict[str, Any], **kwargs: Any) -> None:
        sent_tokens.append(params["UniqueRequestToken"])

    # The retry sends the same token; MTurk refuses to pay it twice, and that counts as paid.
    stub.add_client_error(
        "send_bonus",
        service_error_code="RequestError",
        service_message=DUPLICATE_MESSAGE,
        http_status_code=400,
        expected_params=bonus_params(),
    )
    client.client.meta.events.register("provide-client-params.mturk.SendBonus", record)
    # The first call: MTurk paid, but its answer never came back, so the caller sees a timeout.
    fail_first_call(client, ReadTimeoutError(endpoint_url=SANDBOX_ENDPOINT))
    with pytest.raises(MTurkError) as caught:
        pay(client)
    assert caught.value.retryable and caught.value.code == "ReadTimeoutError"

    assert pay(client) == BonusPayment(token="bonus-42", already_paid=True)
    assert sent_tokens == ["bonus-42", "bonus-42"]


def test_it_raises_other_bonus_errors(mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    stub.add_client_error(
        "send_bonus",
        service_error_code="RequestError",
        service_message="This Requester has insufficient funds in their account to complete this transaction.",
        http_status_code=400,
        expected_params=bonus_params(),
    )
    with pytest.raises(MTurkError) as caught:
        pay(client)
    assert not caught.value.duplicate_request


def test_it_refuses_amounts_mturk_would_misread() -> None:
    assert money(Decimal("1.5")) == "1.50" and money(2) == "2.00" and money(" 0.05 ") == "0.05"
    for bad in ("0", "-1", "0.001", "1e400", "abc", "NaN"):
        with pytest.raises(ValueError):
            money(bad)
    with pytest.raises(TypeError):
        money(0.1)  # type: ignore[arg-type]


# --- Qualifications ----------------------------------------------------------------------------


def test_it_creates_a_qualification_type(mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    stub.add_response(
        "create_qualification_type",
        {
            "QualificationType": {
                "QualificationTypeId": QUAL_ID,
                "Name": "Parts: one or many (Demo Lab)",
                "QualificationTypeStatus": "Active",
                "IsRequestable": False,
                "AutoGranted": False,
            }
        },
        {
            "Name": "Parts: one or many (Demo Lab)",
            "Description": "Passed the qualification test of the parts project.",
            "QualificationTypeStatus": "Active",
            "Keywords": "parts,qualification",
            "RetryDelayInSeconds": 86400,
        },
    )
    created = client.create_qualification_type(
        name="Parts: one or many (Demo Lab)",
        description="Passed the qualification test of the parts project.",
        keywords=["parts", "qualification"],
        retry_delay_seconds=86400,
    )
    assert created == QUAL_ID


def test_it_sets_a_qualification_score_without_mailing_the_worker(mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    stub.add_response(
        "associate_qualification_with_worker",
        {},
        {"QualificationTypeId": QUAL_ID, "WorkerId": WORKER, "IntegerValue": 87, "SendNotification": False},
    )
    client.set_qualification_score(qualification_type_id=QUAL_ID, worker_id=WORKER, score=87)


# --- Workers and account -----------------------------------------------------------------------


def test_it_notifies_workers_in_batches_of_a_hundred(mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    workers = [f"A{n:012d}" for n in range(230)]
    batches = [workers[:100], workers[100:200], workers[200:]]
    failures = [
        [],
        [
            {
                "NotifyWorkersFailureCode": "HardFailure",
                "NotifyWorkersFailureMessage": "Worker not found.",
                "WorkerId": workers[150],
            }
        ],
        [],
    ]
    for batch, failed in zip(batches, failures, strict=True):
        stub.add_response(
            "notify_workers",
            {"NotifyWorkersFailureStatuses": failed},
            {"Subject": "New parts batch", "MessageText": "A new batch is open.", "WorkerIds": batch},
        )
    # Repeated ids are sent once.
    reported = client.notify_workers(
        subject="New parts batch", message="A new batch is open.", worker_ids=workers + workers[:5]
    )
    assert [f["WorkerId"] for f in reported] == [workers[150]]
    with pytest.raises(ValueError):
        client.notify_workers(subject="x" * 201, message="m", worker_ids=[WORKER])


def test_it_reads_the_account_balance(mturk: tuple[MTurkClient, Stubber]) -> None:
    client, stub = mturk
    stub.add_response("get_account_balance", {"AvailableBalance": "10000.00", "OnHoldBalance": "0.00"}, {})
    assert client.account_balance() == Decimal("10000.00")
