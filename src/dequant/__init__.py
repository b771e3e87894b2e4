"""dequant: restore JPEG-compressed images with neural generators."""

__version__ = "0.1.0"
