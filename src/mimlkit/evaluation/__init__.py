"""Evaluation: bag-level splitters, protocol strings and the parallel runner.

    from mimlkit.evaluation import evaluate, parse_protocol
    result = evaluate({"pooled": PooledLinear()}, dataset, parse_protocol("repeat:30"))
    print(result.to_markdown())
"""

from mimlkit.evaluation.runner import TABLE_COLUMNS, EvaluationResult, evaluate, evaluate_train_test
from mimlkit.evaluation.splits import (
    BaseSplitter,
    GroupHoldOut,
    GroupKFold,
    GroupRepeatedRandomSplit,
    HoldOut,
    IterativeStratifiedKFold,
    KFold,
    RepeatedRandomSplit,
    parse_protocol,
    resolve_splits,
)

__all__ = [
    "BaseSplitter", "HoldOut", "RepeatedRandomSplit", "KFold", "IterativeStratifiedKFold",
    "GroupKFold", "GroupHoldOut", "GroupRepeatedRandomSplit", "parse_protocol",
    "resolve_splits", "evaluate", "evaluate_train_test", "EvaluationResult", "TABLE_COLUMNS",
]
