"""Media object storage: the :class:`~tams_analytics.storage.base.ObjectStore` protocol and its backends
(:mod:`~tams_analytics.storage.s3`, presigned S3 URLs; :mod:`~tams_analytics.storage.local`, files served at
signed URLs). The server hands out their URLs; the integrity audit and the notebooks read through them."""
