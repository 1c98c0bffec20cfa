"""YOLO training with network-slimming sparsity, and validation."""
