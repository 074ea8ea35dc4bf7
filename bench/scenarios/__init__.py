"""How a variant is measured (bench/scenarios/base.py): SingleStream, grid and Offline in the measuring
child; interleave and Server across processes.
"""
