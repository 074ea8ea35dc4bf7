"""`bench report`: the decision block, tables and plots of one run, as Markdown and HTML (write.py writes
them).
"""
