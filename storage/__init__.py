"""Object storage: where audio, registered voices and other durable state live.

Two backends behind one interface (:class:`AudioStore`): ``S3Store`` for any S3-compatible
service and ``LocalStore`` for a directory served through signed ``/media`` URLs.
:func:`open_store` picks one from ``settings.store``. Not part of the engine: the service
and the deployments use it; ``tts_engine`` never imports it.
"""

from storage.base import CACHE_CONTROL, AudioStore, StoredObject, Upload, validate_key
from storage.factory import create_store, open_store
from storage.local import LocalStore
from storage.s3 import S3Store

__all__ = ["CACHE_CONTROL", "AudioStore", "LocalStore", "S3Store", "StoredObject", "Upload", "create_store", "open_store",
           "validate_key"]
