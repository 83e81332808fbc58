"""One torch thread for these tiny models: on a shared 2-core machine, OpenMP threads that wait for each
other on every small op make a 40-step test take minutes instead of seconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
