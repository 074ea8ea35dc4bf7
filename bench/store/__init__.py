"""What runs leave on disk: the artifact cache (artifacts.py), run directories and their rows (results.py,
merge.py), the environment record (envinfo.py).
"""
