"""rs-ssl: self-supervised pretraining for remote-sensing imagery with any number of bands."""

__version__ = "0.1.0"
