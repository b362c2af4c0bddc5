"""glue-sweep: fine-tune compact BERT models on GLUE, sweep the paper's grid, build leaderboards.

Data flow: sweep spec -> expanded trials -> trial runner -> per-epoch dev metrics ->
result store -> leaderboard tables.
"""

__version__ = "0.1.0"
