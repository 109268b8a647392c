"""Helpers the tests share (and bench/ reuses): processes, databases, the load driver and books check,
the fault-test stack, the network stand-in."""
