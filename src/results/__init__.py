"""Results own what a unit leaves behind: the per-example record (record.py), the journal it is resumed from
(journal.py), file names (naming.py, the only place they are written or parsed), checkpoint identity (checkpoint.py),
the sidecars' schema (schema.py), atomic file I/O and archiving (files.py), run provenance and secret scrubbing
(provenance.py), and the unit ledger ./run_experiment.sh reads (ledger.py)."""
