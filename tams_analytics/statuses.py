"""The statuses of the service's records, one place each: flow delete requests (``deletion-request.json``) and
webhooks (``webhook.json``). Members are ``str`` (``StrEnum``), so they compare, store and serialise as the text
the spec names.

>>> DeleteRequestStatus.STARTED in UNFINISHED_DELETE_REQUESTS, WebhookStatus("disabled") in ACTIVE_WEBHOOKS
(True, False)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = [
    "ACTIVE_WEBHOOKS",
    "FINISHED_DELETE_REQUESTS",
    "UNFINISHED_DELETE_REQUESTS",
    "DeleteRequestStatus",
    "WebhookStatus",
]


class DeleteRequestStatus(StrEnum):
    """Where a flow delete request is: made, being carried out, or finished (done, or failed with an error)."""

    CREATED = "created"
    STARTED = "started"
    DONE = "done"
    ERROR = "error"


#: requests still to be carried out: writes to their flows are refused meanwhile
UNFINISHED_DELETE_REQUESTS: Final = (DeleteRequestStatus.CREATED, DeleteRequestStatus.STARTED)
#: requests that ended (kept until their ``expiry``)
FINISHED_DELETE_REQUESTS: Final = (DeleteRequestStatus.DONE, DeleteRequestStatus.ERROR)


class WebhookStatus(StrEnum):
    """A webhook's status: new, delivering, turned off by its client, or turned off by the service after failures."""

    CREATED = "created"
    STARTED = "started"
    DISABLED = "disabled"
    ERROR = "error"


#: statuses in which a webhook receives events
ACTIVE_WEBHOOKS: Final = (WebhookStatus.CREATED, WebhookStatus.STARTED)
