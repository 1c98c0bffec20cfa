"""The app `birds ui` runs: three pages (recognition, Q&A, knowledge bases), each with the language switch."""

from pathlib import Path

import streamlit as st

from birdsdao.ui.common import t

st.set_page_config(page_title="鸟之道 birdsdao", page_icon="🐦", layout="wide")

PAGES = Path(__file__).parent / "pages"
page = st.navigation([
    st.Page(PAGES / "identify.py", title=t("page_identify"), icon="🔍", default=True),
    st.Page(PAGES / "ask.py", title=t("page_ask"), icon="💬"),
    st.Page(PAGES / "knowledge.py", title=t("page_kb"), icon="📚"),
])
page.run()
