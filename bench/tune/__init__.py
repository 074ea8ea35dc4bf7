"""`bench tune`: the search (search.py), per-node sensitivity (sensitivity.py, node_ranking.py) and its
report (report.py).
"""
