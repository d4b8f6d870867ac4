"""Evaluation: linear probe and k-NN on frozen features, fine-tuning by label fraction, reports.

The command modules (`probing`, `finetuning`, `reporting`, `augment_search`) are imported by the CLI
only when their command runs, so that `rs-ssl --help` stays fast; what they share is in `protocol`.
"""
