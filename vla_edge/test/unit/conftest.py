import pytest
from vla_edge.testing import write_policy


@pytest.fixture
def make_policy(tmp_path):
    def _make(kind: str, **kwargs):
        return write_policy(kind, tmp_path / kind, **kwargs)

    return _make
