"""Provenance: one recorder for every ingest, transformation, fit, prediction and branch.

Records follow the W3C PROV data model and export to PROV-JSON through the ``prov``
package.
"""

from twinweave.provenance._recorder import (
    NAMESPACE,
    ProvRecord,
    Recorder,
    RecordStore,
    file_attributes,
    sha256_file,
)

__all__ = [
    "NAMESPACE",
    "ProvRecord",
    "RecordStore",
    "Recorder",
    "file_attributes",
    "sha256_file",
]
