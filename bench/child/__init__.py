"""The measuring processes' entry points (`python -m bench.child.worker`, ...): they load one variant and
run scenarios on it. Nothing imports them; bench.launch starts them.
"""
