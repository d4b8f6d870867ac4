"""`rs-ssl convert` (the data-layer issue; not built yet)."""

from rs_ssl.errors import NotImplementedYet


def run(cfg) -> None:
    raise NotImplementedYet("convert", "data-layer")
