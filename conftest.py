"""Test-wide settings: quiet TensorFlow, CPU only."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import inference  # noqa: F401  (pyogrio before TensorFlow: inference/__init__.py says why)
