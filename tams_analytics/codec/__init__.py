"""The codec: TAMS documents <-> table rows, one module per kind of document, the one place that knows both shapes.

The catalog writes what it is sent with it, the server's routes and webhook notifications render what they
send with it, and the ``tams+http`` engine reads what a server lists with it:

* :mod:`.flows`: flows and sources (``flow-get.json``, ``flow-put.json``, ``source.json``);
* :mod:`.segments`: flow segments (``flow-segment.json``, ``flow-segment-post.json``);
* :mod:`.objects`: objects (``object.json``); :mod:`.delete_requests`: ``deletion-request.json``;
* :mod:`.tags`: tags (``tags.json``); :mod:`.common`: JSON text, RFC 3339 times.

Webhooks' documents carry the service's own fields (a secret, its owner's access) and stay with the server's
webhooks (``server.webhooks.wire``).
"""
