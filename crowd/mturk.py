"""The Mechanical Turk requester client: a thin layer over boto3's ``mturk`` client that builds the
calls the crowd machinery makes (HIT types and ExternalQuestion HITs, assignments, approve / reject
with feedback, idempotent bonuses, qualification types and scores, worker notifications, the
account balance, HIT expiry) and turns every service error into one ``MTurkError``.

Settings: ``MTURK_SANDBOX`` (default on) picks the sandbox or the production endpoint, both in
us-east-1 where the requester API lives; ``MTURK_ENDPOINT_URL`` overrides that choice;
``MTURK_ACCESS_KEY_ID`` / ``MTURK_SECRET_ACCESS_KEY`` give the keys (unset: boto3's usual chain).
Nothing here writes to the database: callers record what was sent (see ``send_bonus``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from django.conf import settings

REGION = "us-east-1"
SANDBOX_ENDPOINT = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
PRODUCTION_ENDPOINT = "https://mturk-requester.us-east-1.amazonaws.com"
EXTERNAL_QUESTION_NAMESPACE = (
    "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd"
)
ASSIGNMENT_STATUSES = ("Submitted", "Approved", "Rejected")
# MTurk's system qualification types (the same ids in the sandbox and in production).
APPROVAL_RATE_QUALIFICATION = "000000000000000000L0"
APPROVED_HITS_QUALIFICATION = "00000000000000000040"
LOCALE_QUALIFICATION = "00000000000000000071"

# Limits MTurk documents but its service model does not check.
NOTIFY_BATCH_SIZE = 100
NOTIFY_SUBJECT_MAX = 200
NOTIFY_MESSAGE_MAX = 4096
FEEDBACK_MAX = 1024
QUESTION_MAX_BYTES = 65535
REQUEST_TOKEN_MAX = 64
MONEY_MIN = Decimal("0.01")
# No HIT reward or bonus here comes near this; a larger figure is a mistake (a price in cents).
MONEY_MAX = Decimal("10000")
PAGE_SIZE_MAX = 100

# MTurk answers a repeated UniqueRequestToken (one it saw in the last 24 hours) with a RequestError
# whose message reads 'The idempotency token "<token>" has already been processed. (<request id>)';
# it sets no distinct error code, so the message is what tells it apart.
_DUPLICATE_MARKERS = ("idempotency token", "already been processed")
# botocore's errors for a call that got no answer from MTurk (no connection, a timeout, no keys).
# Its other errors (invalid parameters) are mistakes in the calling code and are not caught.
_UNANSWERED = (BotocoreConnectionError, HTTPClientError, NoCredentialsError, PartialCredentialsError)


class MTurkError(Exception):
    """A call that MTurk refused or that did not reach it.

    ``code`` is the service's error code (``RequestError``: the request is wrong or not allowed;
    ``ServiceFault``: MTurk failed, try again) or, for a call that never got an answer, the name of
    botocore's exception (``EndpointConnectionError``, ``ReadTimeoutError``, ``NoCredentialsError``…);
    ``turk_error_code`` is MTurk's finer code where it sends one."""

    def __init__(self, *, operation: str, code: str, message: str, turk_error_code: str = "") -> None:
        self.operation = operation
        self.code = code
        self.message = message
        self.turk_error_code = turk_error_code
        detail = f" [{turk_error_code}]" if turk_error_code else ""
        super().__init__(f"MTurk {operation} failed: {code}{detail}: {message}")

    @classmethod
    def from_client_error(cls, operation: str, exc: ClientError) -> MTurkError:
        error = exc.response.get("Error", {})
        return cls(
            operation=operation,
            code=str(error.get("Code", "Unknown")),
            message=str(error.get("Message", "")),
            turk_error_code=str(exc.response.get("TurkErrorCode", "")),
        )

    @property
    def duplicate_request(self) -> bool:
        """The call carried a UniqueRequestToken that MTurk had already carried out."""
        text = self.message.lower()
        return self.code == "RequestError" and all(marker in text for marker in _DUPLICATE_MARKERS)

    @property
    def retryable(self) -> bool:
        """Trying the same call again may work (MTurk's own fault, or no answer at all); a refused
        request or missing keys fail the same way again."""
        return self.code not in {"RequestError", "NoCredentialsError", "PartialCredentialsError"}


@dataclass(frozen=True)
class BonusPayment:
    token: str  # the UniqueRequestToken sent
    already_paid: bool  # MTurk had carried out this token before: this call paid nothing more


def endpoint_url(*, sandbox: bool) -> str:
    return SANDBOX_ENDPOINT if sandbox else PRODUCTION_ENDPOINT


def money(amount: Decimal | int | str) -> str:
    """A US dollar amount as MTurk writes it (``"0.25"``); at least one cent, at most two decimals.
    Floats are refused: 0.1 + 0.2 is not an amount anyone means to pay."""
    if isinstance(amount, float | bool):
        raise TypeError("Give money as a Decimal, an int or a string, not a float.")
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise ValueError(f"{amount!r} is not an amount of money.") from None
    if not value.is_finite() or not MONEY_MIN <= value <= MONEY_MAX or value != value.quantize(MONEY_MIN):
        raise ValueError(f"{amount!r}: amounts are 0.01 to {MONEY_MAX} US dollars, in whole cents.")
    return str(value.quantize(Decimal("0.01")))


def external_question(url: str, *, frame_height: int = 0) -> str:
    """The ExternalQuestion XML that makes MTurk frame ``url`` (HTTPS, as MTurk requires).

    MTurk appends ``assignmentId``, ``hitId``, ``workerId`` and ``turkSubmitTo`` to the URL; a query
    of its own is kept, its ``&`` escaped for XML. ``frame_height`` 0 lets MTurk size the frame to
    the window."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        raise ValueError(f"MTurk frames only HTTPS pages; got {url!r}.")
    if any(ch.isspace() for ch in url):
        raise ValueError("The task URL must not contain whitespace.")
    if frame_height < 0:
        raise ValueError("frame_height must be 0 (fit the window) or a height in pixels.")
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<ExternalQuestion xmlns="{EXTERNAL_QUESTION_NAMESPACE}">'
        f"<ExternalURL>{escape(url)}</ExternalURL>"
        f"<FrameHeight>{int(frame_height)}</FrameHeight>"
        "</ExternalQuestion>"
    )
    if len(xml.encode("utf-8")) > QUESTION_MAX_BYTES:
        raise ValueError("The task URL is too long for an ExternalQuestion (64 KB).")
    return xml


def qualification_requirement(
    qualification_type_id: str,
    comparator: str,
    *,
    integer_values: Sequence[int] = (),
    countries: Sequence[str] = (),
    actions_guarded: str = "DiscoverPreviewAndAccept",
) -> dict[str, Any]:
    """One entry of a HIT type's QualificationRequirements. The default guard hides the HIT from
    workers who do not qualify; "Accept" lets them see and preview it but not accept it."""
    requirement: dict[str, Any] = {
        "QualificationTypeId": qualification_type_id,
        "Comparator": comparator,
        "ActionsGuarded": actions_guarded,
    }
    if integer_values:
        requirement["IntegerValues"] = [int(v) for v in integer_values]
    if countries:
        requirement["LocaleValues"] = [{"Country": country} for country in countries]
    return requirement


def score_at_least(qualification_type_id: str, minimum: int, **kwargs: Any) -> dict[str, Any]:
    """Workers whose score on the (qualification test) type is at least ``minimum``."""
    return qualification_requirement(qualification_type_id, "GreaterThanOrEqualTo", integer_values=[minimum], **kwargs)


def bonus_token(bonus_id: int | str) -> str:
    """The UniqueRequestToken of one of our bonus records: the same record always sends the same
    token, so a retry cannot pay twice (within MTurk's 24 hours of remembering tokens)."""
    token = f"bonus-{bonus_id}"
    if not str(bonus_id) or len(token) > REQUEST_TOKEN_MAX:
        raise ValueError(f"A bonus id makes a request token of 1 to {REQUEST_TOKEN_MAX} characters.")
    return token


def _feedback(text: str, *, required: bool) -> str:
    text = text.strip()
    if required and not text:
        raise ValueError("Rejecting work needs a reason the worker can read.")
    if len(text) > FEEDBACK_MAX:
        raise ValueError(f"Feedback to a worker is at most {FEEDBACK_MAX} characters.")
    return text


class MTurkClient:
    """The requester operations the platform uses; ``client`` is boto3's ``mturk`` client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def from_settings(cls) -> MTurkClient:
        url = settings.MTURK_ENDPOINT_URL or endpoint_url(sandbox=settings.MTURK_SANDBOX)
        client = boto3.session.Session().client(
            "mturk",
            region_name=REGION,
            endpoint_url=url,
            aws_access_key_id=settings.MTURK_ACCESS_KEY_ID or None,
            aws_secret_access_key=settings.MTURK_SECRET_ACCESS_KEY or None,
            # botocore retries throttling and MTurk's 5xx itself, sending the same UniqueRequestToken.
            config=Config(connect_timeout=10, read_timeout=30, retries={"mode": "standard", "max_attempts": 3}),
        )
        return cls(client)

    @property
    def endpoint_url(self) -> str:
        return self.client.meta.endpoint_url

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            return getattr(self.client, operation)(**params)
        except ClientError as exc:
            raise MTurkError.from_client_error(operation, exc) from exc
        except _UNANSWERED as exc:
            raise MTurkError(operation=operation, code=type(exc).__name__, message=str(exc)) from exc

    # --- HITs -----------------------------------------------------------------------------------

    def create_hit_type(
        self,
        *,
        title: str,
        description: str,
        reward: Decimal | int | str,
        assignment_duration_seconds: int,
        auto_approval_delay_seconds: int,
        keywords: Iterable[str] = (),
        qualification_requirements: Sequence[dict[str, Any]] = (),
    ) -> str:
        """A HIT type (title, reward, durations and the qualifications a worker needs: MTurk keeps
        qualification requirements on the type, not on each HIT); its HITTypeId."""
        params: dict[str, Any] = {
            "Title": title,
            "Description": description,
            "Reward": money(reward),
            "AssignmentDurationInSeconds": int(assignment_duration_seconds),
            "AutoApprovalDelayInSeconds": int(auto_approval_delay_seconds),
        }
        words = ",".join(word.strip() for word in keywords if word.strip())
        if words:
            params["Keywords"] = words
        if qualification_requirements:
            params["QualificationRequirements"] = list(qualification_requirements)
        return self._call("create_hit_type", **params)["HITTypeId"]

    def create_hit(
        self,
        *,
        hit_type_id: str,
        url: str,
        lifetime_seconds: int,
        max_assignments: int,
        frame_height: int = 0,
        requester_annotation: str = "",
        unique_request_token: str = "",
    ) -> dict[str, Any]:
        """A HIT of the type whose question frames ``url`` (an ExternalQuestion); the HIT as MTurk
        describes it. With a ``unique_request_token``, a repeat raises an MTurkError whose
        ``duplicate_request`` is true (the HIT exists; find it by its ``requester_annotation``)."""
        params: dict[str, Any] = {
            "HITTypeId": hit_type_id,
            "Question": external_question(url, frame_height=frame_height),
            "LifetimeInSeconds": int(lifetime_seconds),
            "MaxAssignments": int(max_assignments),
        }
        if requester_annotation:
            params["RequesterAnnotation"] = requester_annotation
        if unique_request_token:
            params["UniqueRequestToken"] = unique_request_token
        return self._call("create_hit_with_hit_type", **params)["HIT"]

    def get_hit(self, hit_id: str) -> dict[str, Any]:
        return self._call("get_hit", HITId=hit_id)["HIT"]

    def set_hit_expiration(self, hit_id: str, *, expire_at: datetime) -> None:
        """Move a HIT's expiry (later to extend it; a time in the past expires it now)."""
        if expire_at.tzinfo is None:
            raise ValueError("expire_at must be an aware datetime.")
        self._call("update_expiration_for_hit", HITId=hit_id, ExpireAt=expire_at)

    def expire_hit(self, hit_id: str) -> None:
        """Stop new workers from taking the HIT; work already accepted can still be submitted."""
        # MTurk's documented way: an expiry in the past (the epoch).
        self.set_hit_expiration(hit_id, expire_at=datetime.fromtimestamp(0, tz=UTC))

    # --- Assignments ----------------------------------------------------------------------------

    def list_assignments(
        self, hit_id: str, *, statuses: Sequence[str] = ASSIGNMENT_STATUSES, page_size: int = PAGE_SIZE_MAX
    ) -> list[dict[str, Any]]:
        """Every assignment of a HIT in ``statuses`` (all three by default), over all pages."""
        if not 1 <= page_size <= PAGE_SIZE_MAX:
            raise ValueError(f"page_size is 1 to {PAGE_SIZE_MAX}.")
        paginator = self.client.get_paginator("list_assignments_for_hit")
        assignments: list[dict[str, Any]] = []
        try:
            for page in paginator.paginate(
                HITId=hit_id, AssignmentStatuses=list(statuses), PaginationConfig={"PageSize": page_size}
            ):
                assignments.extend(page.get("Assignments", []))
        except ClientError as exc:
            raise MTurkError.from_client_error("list_assignments_for_hit", exc) from exc
        except _UNANSWERED as exc:
            raise MTurkError(operation="list_assignments_for_hit", code=type(exc).__name__, message=str(exc)) from exc
        return assignments

    def approve_assignment(self, assignment_id: str, *, feedback: str = "", override_rejection: bool = False) -> None:
        """Approve (and so pay) an assignment; ``override_rejection`` turns an earlier rejection
        into an approval."""
        params: dict[str, Any] = {"AssignmentId": assignment_id}
        text = _feedback(feedback, required=False)
        if text:
            params["RequesterFeedback"] = text
        if override_rejection:
            params["OverrideRejection"] = True
        self._call("approve_assignment", **params)

    def reject_assignment(self, assignment_id: str, *, feedback: str) -> None:
        """Reject an assignment with the reason the worker will read (MTurk requires one)."""
        self._call(
            "reject_assignment", AssignmentId=assignment_id, RequesterFeedback=_feedback(feedback, required=True)
        )

    def send_bonus(
        self,
        *,
        bonus_id: int | str,
        worker_id: str,
        assignment_id: str,
        amount: Decimal | int | str,
        reason: str,
    ) -> BonusPayment:
        """Pay a bonus once, however often it is retried.

        The UniqueRequestToken comes from our bonus record's id, so a retry (after a timeout, a
        crash between the call and recording it, or botocore's own retry) sends the same token and
        MTurk refuses to pay again; that refusal means the bonus is paid and counts as success.
        MTurk remembers tokens for 24 hours: record the payment as soon as this returns."""
        if not reason.strip():
            raise ValueError("A bonus needs a reason the worker can read.")
        token = bonus_token(bonus_id)
        try:
            self._call(
                "send_bonus",
                WorkerId=worker_id,
                BonusAmount=money(amount),
                AssignmentId=assignment_id,
                Reason=reason.strip(),
                UniqueRequestToken=token,
            )
        except MTurkError as exc:
            if exc.duplicate_request:
                return BonusPayment(token=token, already_paid=True)
            raise
        return BonusPayment(token=token, already_paid=False)

    # --- Qualifications -------------------------------------------------------------------------

    def create_qualification_type(
        self,
        *,
        name: str,
        description: str,
        keywords: Iterable[str] = (),
        retry_delay_seconds: int | None = None,
    ) -> str:
        """An active qualification type that we grant ourselves (the test runs on our pages, so no
        MTurk test or answer key); its QualificationTypeId."""
        params: dict[str, Any] = {"Name": name, "Description": description, "QualificationTypeStatus": "Active"}
        words = ",".join(word.strip() for word in keywords if word.strip())
        if words:
            params["Keywords"] = words
        if retry_delay_seconds is not None:
            params["RetryDelayInSeconds"] = int(retry_delay_seconds)
        return self._call("create_qualification_type", **params)["QualificationType"]["QualificationTypeId"]

    def set_qualification_score(self, *, qualification_type_id: str, worker_id: str, score: int) -> None:
        """Grant the qualification with ``score`` as its value (a later call replaces the score);
        the worker gets no e-mail about it."""
        self._call(
            "associate_qualification_with_worker",
            QualificationTypeId=qualification_type_id,
            WorkerId=worker_id,
            IntegerValue=int(score),
            SendNotification=False,
        )

    # --- Workers and account --------------------------------------------------------------------

    def notify_workers(self, *, subject: str, message: str, worker_ids: Iterable[str]) -> list[dict[str, Any]]:
        """E-mail workers through MTurk, at most 100 per call as MTurk allows; the failures MTurk
        reports (``WorkerId``, ``NotifyWorkersFailureCode``, ``NotifyWorkersFailureMessage``)."""
        if not subject.strip() or len(subject) > NOTIFY_SUBJECT_MAX:
            raise ValueError(f"The subject is 1 to {NOTIFY_SUBJECT_MAX} characters.")
        if not message.strip() or len(message) > NOTIFY_MESSAGE_MAX:
            raise ValueError(f"The message is 1 to {NOTIFY_MESSAGE_MAX} characters.")
        ids = list(dict.fromkeys(worker_ids))  # once each, in the order given
        failures: list[dict[str, Any]] = []
        for start in range(0, len(ids), NOTIFY_BATCH_SIZE):
            response = self._call(
                "notify_workers",
                Subject=subject,
                MessageText=message,
                WorkerIds=ids[start : start + NOTIFY_BATCH_SIZE],
            )
            failures.extend(response.get("NotifyWorkersFailureStatuses", []))
        return failures

    def account_balance(self) -> Decimal:
        """The available balance in US dollars (the sandbox always reports 10,000)."""
        return Decimal(self._call("get_account_balance")["AvailableBalance"])
