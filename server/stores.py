"""The object stores of this deployment (one, the default): local files the server serves itself, or S3.

They are checked when built (:func:`build_stores`): a bucket that does not exist, credentials missing or refused,
an endpoint that does not answer (or is not S3), a local folder that cannot be written each stop the server from
starting, in one line naming the store and the cause (``serve`` exits 2), rather than being found by the clients.
"""

from __future__ import annotations

from collections.abc import Iterator

from server.config import Settings
from server.urls import MintedUrlLists
from tams_analytics.storage.base import ObjectStorageUnavailable, ObjectStore, StorageBackendInfo, Unavailable
from tams_analytics.storage.keys import SigningKeys
from tams_analytics.storage.local import LocalObjectStore

__all__ = ["Stores", "build_stores"]

#: what to do about each cause, in the settings' words (``serve`` says it after the cause)
REMEDIES = {
    Unavailable.NO_CREDENTIALS: "set TAMS_S3_ACCESS_KEY and TAMS_S3_SECRET_KEY",
    Unavailable.CREDENTIALS_REFUSED: "check TAMS_S3_ACCESS_KEY and TAMS_S3_SECRET_KEY",
    Unavailable.NO_SUCH_BUCKET: "create it, or start with --s3-create-bucket",
    Unavailable.UNREACHABLE: "check TAMS_S3_ENDPOINT and that the S3 service runs",
    Unavailable.NOT_WRITABLE: "give the server's user write access, or another --data-dir",
}


class Stores:
    """The storage backends this service offers, by ``storage_id``; one is the default."""

    def __init__(self, stores: list[ObjectStore]) -> None:
        self.by_id: dict[str, ObjectStore] = {s.info.id: s for s in stores}
        defaults = [s for s in stores if s.info.default_storage]
        self.default: ObjectStore | None = defaults[0] if defaults else None
        #: ``get_urls`` lists of recently read objects (segments pages)
        self.url_lists = MintedUrlLists()
        self._local = next((s for s in stores if isinstance(s, LocalObjectStore)), None)

    def get(self, storage_id: str | None) -> ObjectStore | None:
        return self.default if storage_id is None else self.by_id.get(storage_id)

    def labels(self) -> frozenset[str]:
        return frozenset(s.info.label for s in self.by_id.values())

    def __iter__(self) -> Iterator[ObjectStore]:
        return iter(self.by_id.values())

    def local(self) -> LocalObjectStore | None:
        """The local store, which this server serves itself (``/_media``), if there is one."""
        return self._local

    @property
    def needs_base_url(self) -> bool:
        """The local store, which this server serves, does not know the server's URL yet."""
        local = self.local()
        return local is not None and local.base_url == ""

    def learn_base_url(self, base_url: str) -> None:
        """The local store serves its objects from this server: until the server's public URL is known, it learns
        it from the first request (``base_url``)."""
        local = self.local()
        if local is not None and local.base_url == "":
            local.set_base_url(base_url.rstrip("/"))


def build_stores(settings: Settings, *, check: bool = True) -> Stores:
    """The storage backends of this deployment (one, the default), each checked (:meth:`ObjectStore.check`):
    :class:`ObjectStorageUnavailable` (its ``cli`` text with the remedy) when one cannot serve. ``serve``'s children
    (:mod:`server.processes`) do not check again: ``serve`` did at start, and one restarted while object storage is
    down must come up all the same (the storage watch says it is down)."""
    try:
        store = _build_store(settings)
        if check:
            store.check()
    except ObjectStorageUnavailable as exc:
        exc.cli = f"object storage: {exc} ({REMEDIES[exc.cause]})"
        raise
    return Stores([store])


def _build_store(settings: Settings) -> ObjectStore:
    if settings.storage == "s3":
        from tams_analytics.storage.s3 import S3ObjectStore  # boto3 only where S3 is used

        info = StorageBackendInfo(
            id=settings.storage_id,
            label=settings.storage_label,
            provider="S3-compatible",
            store_product="S3",
            region=settings.s3_region,
            default_storage=True,
        )
        store: ObjectStore = S3ObjectStore(
            info,
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint,
            region=settings.s3_region,
            access_key=settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
            secret_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
            prefix=settings.s3_prefix,
            create_bucket=settings.s3_create_bucket,
        )
    else:
        if settings.local_signing_key is not None:
            keys = SigningKeys.fixed(settings.local_signing_key.get_secret_value().encode())
        else:
            keys = SigningKeys.in_dir(settings.data_dir, grace_s=settings.url_lifetime_s)
        info = StorageBackendInfo(
            id=settings.storage_id,
            label=settings.storage_label,
            provider="tams-analytics",
            store_product="local files",
            default_storage=True,
        )
        store = LocalObjectStore(
            info, root=settings.data_dir / "objects", base_url=settings.public_url or "", keys=keys
        )
    return store
