"""ota_updater_node's parameters (config/ota_updater_node.yaml mirrors them field by field)."""

from __future__ import annotations

from dataclasses import dataclass

from vla_monitoring.config import param


@dataclass
class OtaUpdaterConfig:
    """Every parameter of ota_updater_node; times in s (ROS time), sizes in MB."""

    robot_id: str = param("robot_1", nonempty=True, help="this robot's id, sent to the update server")
    server_url: str = param("http://localhost:8095", nonempty=True,
                            help="the update server (http:// or https://)")
    ca_file: str = param("", help="CA certificate (PEM) that signed an https server's certificate; "
                                  "empty: the system's")
    token_file: str = param("", help="file holding this robot's token for the update server, sent as "
                                     "`Authorization: Bearer` (read again when it changes); empty: none sent")
    public_key_file: str = param("~/.ros/vla_fleet/ota/ota_ed25519.pub", nonempty=True,
                                 help="the trusted ed25519 public key packages must be signed with")
    releases_dir: str = param("~/.ros/vla_fleet/ota", nonempty=True,
                              help="holds releases/<version>/, the current link, staging/ and the journal")
    check_interval: float = param(3600.0, lo=1.0, hi=604800.0, help="time between checks for an update [s]")
    check_on_start: bool = param(True, help="check once right after the start")
    health_window: float = param(30.0, lo=0.0, hi=3600.0,
                                 help="how long vla_health and the manifest's checks must hold after a switch [s]")
    keep_releases: int = param(3, lo=2, hi=100, help="releases kept on disk, the active one included")
    max_package_mb: float = param(2048.0, lo=0.001, hi=65536.0, help="largest package downloaded [MB]")
    max_unpacked_mb: float = param(4096.0, lo=0.001, hi=131072.0, help="largest release unpacked [MB]")
    max_files: int = param(10000, lo=1, hi=1000000, help="most files a release may hold")
    request_timeout_s: float = param(30.0, lo=0.1, hi=600.0, help="timeout of each request to the server [s]")
    load_model_timeout_s: float = param(30.0, lo=0.1, hi=600.0,
                                        help="wait for inference_node/load_model to answer [s]")
