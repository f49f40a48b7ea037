"""Arrow schemas of what the pipeline writes: documents and rejects.

Every stage's output shard holds the document columns below plus the columns that stage
and the stages before it add (lang, quality signals, dup_cluster, ...). Rejects have one
fixed schema for all stages so that one DuckDB view covers them; a reject's text is not
copied: join `rejects.id` with the previous stage's documents to read it.
"""
import pyarrow as pa

DOC_FIELDS = [
    pa.field("id", pa.string(), nullable=False),      # stable: from the WARC-Record-ID
    pa.field("dump", pa.string(), nullable=False),    # crawl dump (input folder name)
    pa.field("url", pa.string()),
    pa.field("date", pa.timestamp("s", tz="UTC")),   # WARC-Date
    pa.field("text", pa.string(), nullable=False),
    pa.field("n_chars", pa.int64(), nullable=False),
    pa.field("warc_file", pa.string()),
    pa.field("warc_record_id", pa.string()),
    pa.field("warc_offset", pa.int64()),
    pa.field("charset", pa.string()),
    pa.field("replaced_chars", pa.int32()),           # U+FFFD in the text (bytes the charset could not decode)
]
DOC_SCHEMA = pa.schema(DOC_FIELDS)

REJECT_SCHEMA = pa.schema([
    pa.field("stage", pa.string(), nullable=False),
    pa.field("reason", pa.string(), nullable=False),  # e.g. extract:not_html, lang:fr
    pa.field("detail", pa.string()),                  # free text: content type, status, survivor id
    pa.field("id", pa.string()),
    pa.field("dump", pa.string()),
    pa.field("url", pa.string()),
    pa.field("source", pa.string()),                  # where it came from: file and byte offset
])


def extend_schema(base: pa.Schema, fields: list[pa.Field]) -> pa.Schema:
    """A stage's output schema: its input's, with its own columns (re)placed at the end,
    so a stage run over its own kind of output never holds a column twice."""
    names = {f.name for f in fields}
    return pa.schema([f for f in base if f.name not in names] + list(fields))


def with_columns(table: pa.Table, fields: list[pa.Field], arrays: list) -> pa.Table:
    """The table with these columns (re)placed at the end, as extend_schema describes."""
    table = table.drop_columns([f.name for f in fields if f.name in table.column_names])
    for f, a in zip(fields, arrays):
        table = table.append_column(f, a if isinstance(a, (pa.Array, pa.ChunkedArray)) else pa.array(a, f.type))
    return table
