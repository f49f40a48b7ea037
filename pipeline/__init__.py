"""curate's spine: config, schema, stage protocol, Ray runner, storage of the record, CLI, report."""
