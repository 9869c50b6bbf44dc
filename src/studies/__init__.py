"""Studies beyond the four stages, each built on the same units and engine: demo-count curves (phase 3) and the
tipping point (phase 5). Their CSVs are read by consolidation into the golden files."""
