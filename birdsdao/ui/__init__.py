"""`birds ui`: the original Streamlit app (recognition, Q&A, knowledge bases) on the library the CLI uses.

Streamlit is imported only here and in the page scripts, never by `birds --help`.
"""
