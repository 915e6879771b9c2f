"""The two stages (ingest, deliver) and the parts they are built from."""
