#!/usr/bin/env bash
# The forensics bench (bench/forensics.py): generate a Logpush archive the size of a real slice
# (50 shops x 30 days x 10,000 requests a day = 15 M request lines), compact it with DuckDB, compact
# one more day incrementally, and time `scripts/forensics why|errors|first-seen|slow`.
#   bench/forensics.sh          full run (~15-30 min on 2 cores; ~1.2 GB archive, ~1 GB Parquet
#                               under bench/out/forensics): writes the "Forensics" section of
#                               bench/RESULTS.md and the `forensics` key of bench/RESULTS.json
#   bench/forensics.sh --keep   the same, reusing an archive already generated with these sizes
#   bench/forensics.sh --smoke  toy sizes (seconds), results under bench/out/forensics-smoke/;
#                               scripts/test runs it so the bench cannot rot
source "$(dirname "$0")/../scripts/lib.sh"
ensure_forensics
exec "$FORENSICS_PY" "$ROOT/bench/forensics.py" "$@"
