"""The results manifest: one row per item, a journal while the batch runs, and what a rerun may skip.

| column     | what                                                                         |
| ---------- | ---------------------------------------------------------------------------- |
| ``key``    | the item's output path relative to OUT (its identity)                        |
| ``input``  | the image's location as planned (local path or URL)                          |
| ``mask``   | the mask's location, or null                                                 |
| ``output`` | the local output path                                                        |
| ``status`` | ``done`` (erased and written), ``skipped`` (already done), ``failed``        |
| ``error``  | one line saying why it failed, or null                                       |
| ``seed``   | the erase seed                                                               |
| ``windows``| windows erased (0 for an empty mask; null when skipped or failed)            |
| ``seconds``| wall time of the item on its worker                                          |
| ``worker`` | ``HOST:PID`` of the process that handled it                                  |
| ``digest`` | sha256 of the inputs' bytes, the seed and the settings (null when unread)    |
| ``warnings`` | one-line warnings joined with ``; `` (mask resized, empty mask), or null   |

While a batch runs, every finished row is appended (and flushed) to ``RESULTS.journal``; the
results file itself (JSON lines, or Parquet when its name ends in ``.parquet``) is written once at
the end, atomically, in the items' order, and the journal removed. A run that is interrupted or
killed leaves the journal, so the rerun knows every item that was finished: an item is skipped
when its output exists and its recorded digest equals the digest of its inputs now.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STATUSES = ("done", "skipped", "failed")
FIELDS: dict[str, str] = {
    "key": "string", "input": "string", "mask": "string", "output": "string", "status": "string",
    "error": "string", "seed": "int64", "windows": "int64", "seconds": "float64", "worker": "string",
    "digest": "string", "warnings": "string",
}  # fmt: skip


def journal_path(results: Path) -> Path:
    """Where a running batch appends its finished rows: ``RESULTS.journal`` beside the results."""
    return results.with_name(f"{results.name}.journal")


def arrow_schema() -> Any:
    """The rows' pyarrow schema (Parquet results and the Ray engine's batches)."""
    import pyarrow as pa

    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}
    return pa.schema([(name, types[kind]) for name, kind in FIELDS.items()])


def _jsonl_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file; a torn last line (a killed writer) is ignored."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "key" in row:
                rows.append(row)
    return rows


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a results file (JSON lines or Parquet)."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    return _jsonl_rows(path)


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write the results file atomically: Parquet for a ``.parquet`` name, else JSON lines."""
    from eradiff.pipeline.io import atomic_write

    rows = [{name: row.get(name) for name in FIELDS} for row in rows]
    if path.suffix.lower() == ".parquet":
        import io

        import pyarrow as pa
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema()), buffer)
        data = buffer.getvalue()
    else:
        data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)


class Journal:
    """Appends finished rows to ``RESULTS.journal``, one flushed JSON line each.

    It starts from the rows a previous run finished (written atomically first), so a run that is
    interrupted again still knows all of them.
    """

    def __init__(self, results: Path, previous: list[dict[str, Any]]) -> None:
        self.path = journal_path(results)
        write_rows(self.path, previous)  # JSON lines (not a .parquet name), atomically
        self._file = open(self.path, "a", encoding="utf-8")
        self.rows = len(previous)

    def append(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps({name: row.get(name) for name in FIELDS}, ensure_ascii=False) + "\n")
        self._file.flush()
        self.rows += 1

    def close(self, *, remove: bool) -> None:
        """Close; the file is removed when ``remove`` or when it holds no row."""
        self._file.close()
        if remove or self.rows == 0:
            self.path.unlink(missing_ok=True)


def previous_rows(results: Path) -> list[dict[str, Any]]:
    """The rows a previous run finished (done or skipped, with a digest), one per key, the newest.

    The journal is newer than the results file, so its rows win; a later failed row drops the key.
    """
    rows: dict[str, dict[str, Any]] = {}
    for path in (results, journal_path(results)):
        if path.is_file():
            for row in read_rows(path) if path == results else _jsonl_rows(path):
                if row.get("status") in ("done", "skipped") and row.get("digest"):
                    rows[row["key"]] = row
                else:
                    rows.pop(row["key"], None)
    return list(rows.values())


__all__ = [
    "FIELDS",
    "STATUSES",
    "Journal",
    "arrow_schema",
    "journal_path",
    "previous_rows",
    "read_rows",
    "write_rows",
]
