"""Fixtures shared by several test modules.

``one_torch_thread`` is opt-in (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)
so modules that never touch torch do not import it. Module-scoped fixtures are built once
per module that uses them, as when each module defined its own copy.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's torch work single-threaded, restoring the thread count afterwards.

    Tiny models do microseconds of work per op; on a busy machine OpenMP hand-offs between
    threads cost far more than that (measured: 20x more CPU), and spinning OpenMP threads on
    a shared 2-core machine slows a backward pass down by an order of magnitude.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory):
    """Folder of a tiny random Llama chat model and its tokenizer (``make_tiny_chat_model``)."""
    from fastreasonseg.distill.testing import make_tiny_chat_model

    return make_tiny_chat_model(tmp_path_factory.mktemp("tiny_chat_model"))
