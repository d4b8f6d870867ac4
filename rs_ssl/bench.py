"""`rs-ssl bench` (the throughput issue; not built yet)."""

from rs_ssl.errors import NotImplementedYet


def run(cfg) -> None:
    raise NotImplementedYet("bench", "throughput")
