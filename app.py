"""Entry point: ``streamlit run app.py``."""

from lmtt.ui.main import main

main()
