"""Generated gRPC stubs for protos/stn/alignment/v1/alignment.proto (scripts/gen_protos.sh)."""
