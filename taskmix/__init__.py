"""taskmix: one engine for pretraining, intermediate training, multi-task training and fine-tuning of sentence encoders."""

__version__ = "0.1.0"
