"""lm-eval tasks shipped with the project, fully offline, run on models in memory.

``lm_eval_perplexity(model, tokenizer, documents)``: perplexity on the held-out split (see
``runner`` for how its numbers relate to ``awq_ref.eval.perplexity``).
``lm_eval_cloze(model, tokenizer, passages)``: last-word accuracy, LAMBADA-style (``cloze``).
"""
from awq_harness.awq_ref.eval.lm_eval_task.cloze import ClozeResult, cloze_passages, lm_eval_cloze
from awq_harness.awq_ref.eval.lm_eval_task.runner import LmEvalResult, held_out_documents, lm_eval_perplexity

__all__ = ["ClozeResult", "LmEvalResult", "cloze_passages", "held_out_documents", "lm_eval_cloze",
           "lm_eval_perplexity"]
