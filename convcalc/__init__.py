"""convcalc: convolution arithmetic calculator and CNN architecture designer for PyTorch."""

__version__ = "0.1.0"
