"""``nbo serve`` as a child process: a server that cannot start says why, in the error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nbo.serving.process import ServeProcess, ServeProcessError, free_port


def test_a_server_that_exits_raises_with_its_log(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBO_")}
    server = ServeProcess(env | {"NBO_DATA_DIR": str(tmp_path)}, tmp_path, port=free_port())
    server.stop()  # not started: nothing to do
    server.start()
    try:
        with pytest.raises(ServeProcessError, match=r"exited with 2(.|\n)*no API keys"):
            server.wait_ready(120)
        assert server.log == tmp_path / "serve-1.log" and server.log.exists()
    finally:
        server.kill()
    server.kill()  # gone already: nothing to do
    assert server.process is None and server.processes() == []
