"""Result files: JSON (metadata, records, target verdicts) and CSV (the records)."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import List, Optional


def write_json(path: Path, meta: dict, records: List[dict], targets: Optional[List[dict]]) -> None:
    payload = {"meta": meta, "records": records, "targets": targets}
    path.write_text(json.dumps(payload, indent=1) + "\n")


def write_csv(path: Path, records: List[dict]) -> None:
    if not records:
        path.write_text("")
        return
    fields = list(records[0])
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(records)
