"""Backbones (timm, any band count) and projection/prediction heads."""

from rs_ssl.models.backbone import create_backbone, export_backbone, load_weights
from rs_ssl.models.heads import mlp

__all__ = ["create_backbone", "export_backbone", "load_weights", "mlp"]
