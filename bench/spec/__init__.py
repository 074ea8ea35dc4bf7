"""The suite file's schema (suite.py and its sections), the judging profiles, and safe YAML loading.
Imports nothing of bench above it.
"""
