"""Distillation from transformer teachers: teachers, metrics (losses and training elsewhere)."""

from neurolang.metrics import (
    METRICS,
    accuracy,
    compute_metrics,
    confusion_matrix,
    f1_score,
    macro_f1,
    matthews_corrcoef,
)
from neurolang.teachers import (
    DEFAULT_TEACHER,
    Teacher,
    TeacherError,
    TeacherOutput,
    evaluate_classifier,
    finetune_teacher,
    load_teacher,
    resolve_teacher_path,
)

__all__ = [
    "DEFAULT_TEACHER",
    "METRICS",
    "Teacher",
    "TeacherError",
    "TeacherOutput",
    "accuracy",
    "compute_metrics",
    "confusion_matrix",
    "evaluate_classifier",
    "f1_score",
    "finetune_teacher",
    "load_teacher",
    "macro_f1",
    "matthews_corrcoef",
    "resolve_teacher_path",
]
