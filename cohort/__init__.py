"""Many patients at once: records streamed in input order, on every core, each a result
or one error row (`cledecide evaluate` on a folder, a glob or JSON Lines; the library
entry point for one partition is `evaluate_records`, docs/cohorts.md)."""
from .stream import (VIEWS, Outcome, Record, Summary, csv_header, csv_row, default_jobs,
                     evaluate_all, evaluate_records, evaluate_stream, is_one_record,
                     jsonl_line, load_rules, records, settle, text_line)

__all__ = ["VIEWS", "Outcome", "Record", "Summary", "csv_header", "csv_row", "default_jobs",
           "evaluate_all", "evaluate_records", "evaluate_stream", "is_one_record",
           "jsonl_line", "load_rules", "records", "settle", "text_line"]
