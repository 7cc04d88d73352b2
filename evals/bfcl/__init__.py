"""BFCL (Berkeley Function Calling Leaderboard) v4 through a chat endpoint, judged by BFCL's own
checkers: the data and checkers come from the installed `bfcl-eval` package, never a download.

Modules: `data` (the package's categories and possible answers), `subset` (the promotion
subset's file and rule), `ask` (one chat request with tools, the project's retry and FAIL/ERROR
rules), `checker` (BFCL's AST checker), `single_turn` (the AST categories), `multi_turn` (the
multi-turn loop), `items` (one judged entry), `run` (a selection of entries, judged per entry).
"""
