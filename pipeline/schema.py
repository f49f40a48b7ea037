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
