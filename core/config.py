"""Where Visual Curation keeps its data, and the names of the things it writes.

The LanceDB location is, in order: the ``uri`` argument of an API call, the environment
variable ``VISUAL_CURATION_LANCEDB_URI``, or ``<FiftyOne config dir>/visual_curation/lancedb``.
Any URI LanceDB accepts works: a local folder, ``s3://bucket/prefix`` (credentials from the
usual AWS environment variables, ``AWS_ENDPOINT_URL`` for S3-compatible stores) or
``db://project`` for LanceDB Cloud (``LANCEDB_API_KEY`` / ``LANCEDB_REGION``).
"""
from __future__ import annotations

import os
import re

FIELD_PREFIX = "vc_"
ERROR_FIELD = "vc_error"
RUN_KEY_PREFIX = "vc_"
ENV_URI = "VISUAL_CURATION_LANCEDB_URI"
# above this many rows a table gets a LanceDB ANN index for find-similar
ANN_INDEX_MIN_ROWS = int(os.environ.get("VISUAL_CURATION_ANN_MIN_ROWS", "100000"))

_ID_RE = re.compile(r"^[0-9a-f]{24}$")


def fiftyone_config_dir():
    return os.environ.get("FIFTYONE_CONFIG_DIR") or os.path.join(
        os.path.expanduser("~"), ".fiftyone")


def lancedb_uri(uri=None):
    """The LanceDB URI in effect (see the module docstring)."""
    uri = uri or os.environ.get(ENV_URI)
    if uri:
        return uri if "://" in uri else os.path.abspath(os.path.expanduser(uri))
    return os.path.join(fiftyone_config_dir(), "visual_curation", "lancedb")


def is_remote(uri):
    return "://" in str(uri) and not str(uri).startswith("file://")


def storage_options_from_env(uri):
    """Credentials/endpoint for object storage, read from the environment."""
    if not str(uri).startswith(("s3://", "s3a://")):
        return None
    opts = {}
    for env, key in (("AWS_ACCESS_KEY_ID", "aws_access_key_id"),
                     ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
                     ("AWS_SESSION_TOKEN", "aws_session_token"),
                     ("AWS_REGION", "region"), ("AWS_DEFAULT_REGION", "region"),
                     ("AWS_ENDPOINT_URL", "endpoint"), ("AWS_ENDPOINT_URL_S3", "endpoint")):
        if os.environ.get(env):
            opts[key] = os.environ[env]
    if opts.get("endpoint", "").startswith("http://"):
        opts["allow_http"] = "true"
    return opts or None


def check_id(value):
    """Raises unless ``value`` is a 24-hex-digit ObjectId string (used in LanceDB filters)."""
    value = str(value)
    if not _ID_RE.match(value):
        raise ValueError(f"Not a valid sample/label id: {value[:40]!r}")
    return value


def sql_in(column, ids):
    """A LanceDB ``column IN (...)`` filter over validated ids only (no user strings)."""
    ids = [check_id(i) for i in ids]
    return f"{column} IN ({', '.join(repr(i) for i in ids)})" if ids else "false"


def sql_string(value):
    """A SQL string literal for a user string: quotes doubled, NUL bytes rejected."""
    value = str(value)
    if "\x00" in value:
        raise ValueError("NUL byte in a filter value")
    return "'" + value.replace("'", "''") + "'"
