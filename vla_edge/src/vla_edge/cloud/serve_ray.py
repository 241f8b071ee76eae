"""Scale-out on Ray Serve: the same ASGI app (`app.create_app`) as the ingress of a deployment of N
replicas, each loading the policy and batching its own requests; Ray's proxy is the one HTTP and
WebSocket entry point, on `--http-port`. Local Ray by default, a cluster with `--ray-address`.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading

from ray import serve

from vla_edge.cloud.app import create_app
from vla_edge.cloud.config import CloudServerConfig
from vla_edge.cloud.service import CloudService
from vla_monitoring.config import build_config

LOG = logging.getLogger(__name__)
APP_NAME = "vla_cloud"


@serve.deployment(name="vla_cloud_policy")
@serve.ingress()
class PolicyReplica:
    """One replica: loads the policy like the single-process server and serves the same app."""

    def __init__(self, settings: dict):
        logging.basicConfig(level=settings.get("log_level", "info").upper())
        self.service = CloudService.from_config(build_config(CloudServerConfig, settings))

    def __serve_build_asgi_app__(self):
        return create_app(self.service)


def run_ray(config: CloudServerConfig) -> int:
    """Starts (or joins) Ray, deploys the replicas, prints the ready line, serves until SIGINT/SIGTERM."""
    import ray

    ray.init(address=config.ray_address or None, include_dashboard=False, log_to_driver=True,
             configure_logging=False)
    http = {"host": config.host, "port": config.http_port}
    if config.certfile:
        http.update(ssl_certfile=config.certfile, ssl_keyfile=config.keyfile)
    serve.start(http_options=http)
    # each WebSocket connection holds one ongoing request for its lifetime; batching needs many at once
    deployment = PolicyReplica.options(num_replicas=config.ray_replicas,
                                       max_ongoing_requests=config.queue_limit + config.max_batch_size,
                                       ray_actor_options={"num_cpus": 0})
    settings = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    serve.run(deployment.bind(settings), name=APP_NAME, route_prefix="/")
    scheme = "https" if config.certfile else "http"
    line = (f"cloud_server ready: {scheme}://{config.host}:{config.http_port} (HTTP and openpi WebSocket) "
            f"on Ray Serve, {config.ray_replicas} replicas")
    LOG.info(line)
    print(line, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
    ray.shutdown()
    return 0
