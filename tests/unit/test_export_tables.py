"""The export's files of rows: CSV and Parquet agree cell for cell, and Parquet is written a row group at a time."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ledger.cli import _export
from ledger.cli._csv import TRANSFERS
from ledger.cli._export import open_table, table_format
from ledger.cli._ops import InputError

COLUMNS = [*TRANSFERS.columns, *TRANSFERS.state_columns]


def rows(count: int) -> list[list[int]]:
    """Rows with every column at its width's largest value somewhere (128-bit ids past any 64-bit integer)."""
    top = {name: 2 ** TRANSFERS.widths.get(name, 64) - 1 for name in COLUMNS}
    return [[top[name] - (i % 3) for name in COLUMNS] for i in range(count)]


def test_parquet_and_csv_hold_the_same_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.parquet as pq

    monkeypatch.setattr(_export, "PARQUET_ROWS_PER_GROUP", 100)
    written = rows(2 * 100 + 5)
    for name, format in (("t.parquet", "parquet"), ("t.csv", "csv")):
        with open_table(name, tmp_path / name, TRANSFERS, COLUMNS, format) as table:
            for row in written:
                table.writerow(row)
    parquet = pq.ParquetFile(tmp_path / "t.parquet")
    assert parquet.metadata.num_row_groups == 3  # memory holds one row group, not the export
    assert str(parquet.schema_arrow.field("id").type) == "string"
    assert str(parquet.schema_arrow.field("amount").type) == "uint64"
    assert str(parquet.schema_arrow.field("code").type) == "uint16"
    from_parquet = [[int(row[name]) for name in COLUMNS] for row in parquet.read().to_pylist()]
    with (tmp_path / "t.csv").open(newline="") as handle:
        from_csv = [[int(cell) for cell in row] for row in list(csv.reader(handle))[1:]]
    assert from_parquet == from_csv == written


def test_the_format_follows_the_file_name_unless_named() -> None:
    assert table_format(None, "out.csv") == "csv"
    assert table_format(None, "OUT.PARQUET") == "parquet"
    assert table_format("csv", "out.parquet") == "csv"
    assert table_format(None, "-") == "csv"
    with pytest.raises(InputError, match="standard output"):
        table_format("parquet", "-")
