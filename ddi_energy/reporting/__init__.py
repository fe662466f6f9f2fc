"""Stage 7, reporting: text summaries, gate overheads, evaluation reports and figures."""
