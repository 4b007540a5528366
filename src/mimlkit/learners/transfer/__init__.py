"""CNN transfer learners (seed 001): per-label (L1-)logistic regression on CNN features."""

from mimlkit.learners.transfer.transfer_lr import TransferImageLR, TransferLR, make_liblinear

__all__ = ["TransferLR", "TransferImageLR", "make_liblinear"]
