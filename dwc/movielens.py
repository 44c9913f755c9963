"""`dwc data movielens`: MovieLens-100K as a raw multi-scenario CTR log (docs/data.md).

The ratings ship inside the recbole 1.2.1 wheel (`recbole/dataset_example/ml-100k/ml-100k.{inter,
user,item}`); the wheel is downloaded once with `pip download --no-deps recbole==1.2.1` into the
cache (~/.cache/dwc) and read from the zip. The data's licence forbids redistribution: it is never
copied into the repository, only into the log this writes.

One row per rating, in time order (timestamp, then user, then item), with the columns the specs
in experiments/movielens/ read:

| column | values |
|---|---|
| user_id, item_id | the dataset's ids (strings) |
| age_group | "<25", "25-34", "35-49" or "50+" (a scenario) |
| gender | "M" or "F" (a scenario) |
| occupation | one of 21 occupations |
| genre | the movie's first genre; genres: all of them joined with "^" |
| year | the release year (float, null where unknown) |
| history | the user's previous movies, oldest first, at most `history` of them, joined with "^" |
| rating | 1 .. 5 |
| click | 1.0 when rating >= 4, else 0.0 (the label) |
| timestamp | seconds since 1970 (the order of the file: `--split-by order` is a time split) |
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from collections import defaultdict, deque
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from dwc.diagnostics import Diagnostic, DiagnosticError

WHEEL = "recbole-1.2.1-py3-none-any.whl"
MEMBER = "recbole/dataset_example/ml-100k/ml-100k.{}"


def _fail(message: str, help: str) -> DiagnosticError:
    return DiagnosticError([Diagnostic.file_level("DW610", message, help=help)])


def wheel_path(cache: str | None = None) -> Path:
    """The recbole wheel in the cache, downloaded with pip when it is not there yet."""
    folder = Path(cache) if cache else Path.home() / ".cache" / "dwc"
    wheel = folder / WHEEL
    if wheel.is_file():
        return wheel
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "recbole==1.2.1",
               "-d", str(folder)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not wheel.is_file():
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise _fail(f"cannot download the recbole wheel: {last[0]}",
                    f"run '{' '.join(command)}' by hand, or put {WHEEL} into {folder}")
    return wheel


def _table(archive: zipfile.ZipFile, part: str) -> list[list[str]]:
    text = archive.read(MEMBER.format(part)).decode("utf-8", errors="replace")
    lines = text.splitlines()
    return [line.split("\t") for line in lines[1:] if line]


def _age_group(age: int) -> str:
    return "<25" if age < 25 else "25-34" if age < 35 else "35-49" if age < 50 else "50+"


def read_ratings(wheel: Path, history: int) -> pa.Table:
    """The ratings of the wheel's ml-100k as the raw log of the module docstring."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            users = {row[0]: row for row in _table(archive, "user")}
            items = {row[0]: row for row in _table(archive, "item")}
            ratings = _table(archive, "inter")
    except (OSError, KeyError, zipfile.BadZipFile) as error:
        raise _fail(f"cannot read ml-100k from '{wheel}': {error}",
                    f"delete it to download it again ({WHEEL})") from None
    ratings.sort(key=lambda r: (int(float(r[3])), int(r[0]), int(r[1])))
    columns: dict[str, list] = defaultdict(list)
    recent: dict[str, deque] = defaultdict(lambda: deque(maxlen=history))
    for user, item, rating, timestamp in ratings:
        profile, movie = users[user], items.get(item, [item, "", "", ""])
        genres = movie[3].split() if len(movie) > 3 else []
        year = movie[2] if len(movie) > 2 else ""
        columns["user_id"].append(user)
        columns["item_id"].append(item)
        columns["age_group"].append(_age_group(int(profile[1])))
        columns["gender"].append(profile[2])
        columns["occupation"].append(profile[3])
        columns["genre"].append(genres[0] if genres else None)
        columns["genres"].append("^".join(genres))
        columns["year"].append(float(year) if year.isdigit() else None)
        columns["history"].append("^".join(recent[user]))
        columns["rating"].append(float(rating))
        columns["click"].append(1.0 if float(rating) >= 4 else 0.0)
        columns["timestamp"].append(int(float(timestamp)))
        recent[user].append(item)
    types = {"year": pa.float64(), "rating": pa.float64(), "click": pa.float64(),
             "timestamp": pa.int64()}
    return pa.table({name: pa.array(values, type=types.get(name, pa.string()))
                     for name, values in columns.items()})


def write_log(out: str, history: int = 20, cache: str | None = None) -> int:
    """Write the raw log to `out` (.parquet, or .csv) atomically; returns its row count."""
    from dwc.driver import atomic_file

    table = read_ratings(wheel_path(cache), history)
    buffer = io.BytesIO()
    if out.lower().endswith(".csv"):
        pacsv.write_csv(table, buffer)
    else:
        pq.write_table(table, buffer)
    with atomic_file(out, "--out file") as handle:
        handle.write(buffer.getvalue())
    return table.num_rows
