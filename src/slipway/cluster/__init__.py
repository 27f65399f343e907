"""The local control plane slipway's tests and demo run on: built from source, started on loopback."""
