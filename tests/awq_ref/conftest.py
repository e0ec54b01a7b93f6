"""Fixtures the awq_ref tests opt into."""
import pytest
import torch


@pytest.fixture
def one_thread():
    """torch on one thread for the test: calibrated methods sum in a thread-dependent order, so
    byte-for-byte comparisons between runs need a fixed thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
