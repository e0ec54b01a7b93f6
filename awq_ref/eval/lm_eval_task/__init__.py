"""An lm-eval task shipped with the project: perplexity on the held-out split, fully offline.

``lm_eval_perplexity(model, tokenizer, documents)`` runs lm-eval's HFLM on a model object in
memory; see ``runner`` for how its numbers relate to ``awq_ref.eval.perplexity``.
"""
from awq_ref.eval.lm_eval_task.runner import LmEvalResult, held_out_documents, lm_eval_perplexity

__all__ = ["LmEvalResult", "held_out_documents", "lm_eval_perplexity"]
