"""Flow and segment deletions the API hands to a flow delete request (202): accepted by :mod:`.intake` (or done
at once when small), kept in the store (:mod:`.records`), carried out in chunks by a background worker
(:mod:`.worker`), listed by :mod:`server.routes.delete_requests`.
"""
