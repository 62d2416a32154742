"""Webhooks: registered through ``/service/webhooks`` (:mod:`server.routes.webhooks`), kept in the store
(:mod:`.records`), fed by the changes the routes make (:mod:`.publish` turns them into :mod:`.events`, routed
to the webhooks that want them and written to the store's outbox, :mod:`.outbox`, in the change's
transaction), and delivered in order by a background worker (:mod:`.delivery`) as the notifications of
:mod:`.wire`.
"""
