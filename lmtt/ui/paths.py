"""The one widget for a server path (a corpus, a neuron index, a context index).

Local mode: a text field, seeded from an environment variable. Hosted mode: a list of what
the server offers (the allow-listed data folders), and no way to type a path; a path that
arrives otherwise (the URL, the environment) is refused with the same words whether or not
it exists.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from lmtt.errors import LmttError
from lmtt.ui.cache import settings

NONE = ""


def path_input(label: str, key: str, offered: list[Path], default: str = "", where=None,
               help: str | None = None) -> str:  # fmt: skip
    """The chosen path ("" for none); in hosted mode one of ``offered``. ``where`` is the
    container to draw in (default: the page)."""
    where = st if where is None else where
    s = settings()
    if not s.hosted:
        if key not in st.session_state:
            st.session_state[key] = default
        return where.text_input(label, key=key, help=help).strip()
    choices = [NONE, *(str(p) for p in offered)]
    wanted = st.session_state.get(key, default) or NONE
    if wanted not in choices:
        try:
            s.check_data_path(wanted, offered)
        except LmttError as e:
            where.error(str(e))
        wanted = NONE
    st.session_state[key] = wanted
    return where.selectbox(label, choices, key=key, help=help,
                           format_func=lambda p: "—" if p == NONE else Path(p).name)  # fmt: skip
