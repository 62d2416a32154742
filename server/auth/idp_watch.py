"""The identity provider's keys fetched at start (``TAMS_AUTH=jwt``), and again with back-off until they are.

The server starts whether or not the provider answers: while no keys could be fetched, ``/ready`` answers 503
naming the provider and the cause (the fetch reports to the server's health: :mod:`server.auth.tokens`), and a
token that cannot be checked answers 503, not 401. This worker tries at once, then after :data:`FIRST_RETRY_S`,
doubling up to :data:`MAX_RETRY_S`, until a fetch succeeds; from then on the keys are fetched when tokens need
them (an unknown key id, the set older than ``TAMS_JWT_JWKS_TTL_S``), as before.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from server.auth.tokens import JwksCache
from server.services import Services, Stop

__all__ = ["FIRST_RETRY_S", "MAX_RETRY_S", "start"]

logger = logging.getLogger(__name__)

#: seconds before the first retry, and the longest wait between two
FIRST_RETRY_S = 1.0
MAX_RETRY_S = 30.0
#: seconds ``stop`` waits for a fetch in flight (it ends within the provider's HTTP timeout)
JOIN_TIMEOUT_S = 10.0


def start(services: Services) -> Stop:
    verifier = services.authorizer.verifier
    stopping = threading.Event()
    thread = None
    if verifier is not None:
        thread = threading.Thread(target=_fetch_until_done, args=(verifier.keys, stopping), name="tams-idp-keys")
        thread.daemon = True
        thread.start()

    async def stop() -> None:
        stopping.set()
        if thread is not None:
            await asyncio.to_thread(thread.join, JOIN_TIMEOUT_S)

    return stop


def _fetch_until_done(keys: JwksCache, stopping: threading.Event) -> None:
    wait = FIRST_RETRY_S
    while not stopping.is_set():
        if keys.fetched or keys.fetch_now():
            return
        logger.debug("identity provider keys: trying again in %.0f s", wait)
        stopping.wait(wait)
        wait = min(wait * 2, MAX_RETRY_S)
