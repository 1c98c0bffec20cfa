"""Network-slimming channel pruning of ultralytics YOLO detectors."""
