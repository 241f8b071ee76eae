"""Runs one update and kills itself with SIGKILL at the named point: the test-only crash hook of
vla_fleet.ota.updater. Usage: ota_crash_child.py RELEASES_DIR PUBLIC_KEY SERVER_URL POINT"""

import os
import signal
import sys
import time
from pathlib import Path

from vla_fleet.ota.download import ServerClient
from vla_fleet.ota.signing import load_verify_key
from vla_fleet.ota.updater import Updater


def main() -> None:
    releases_dir, public_key, url, point = sys.argv[1:5]
    seen = {"downloading": 0}

    def crash(at: str) -> None:
        if at == "downloading":  # a few chunks in: a real partial download
            seen["downloading"] += 1
            if seen["downloading"] < 3:
                return
        if at == point:
            os.kill(os.getpid(), signal.SIGKILL)

    updater = Updater(Path(releases_dir), load_verify_key(Path(public_key)), clock=time.time,
                      report=lambda *a: None, crash_hook=crash)
    updater.recover()
    print(updater.run(ServerClient(url), "robot_1", lambda: (True, "loaded"),
                      lambda pending: (point != "rolling_back", "health says no")))


if __name__ == "__main__":
    main()
